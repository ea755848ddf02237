"""Device drivers, transports and the KAP-session simulator (plain Python, no Qt)."""
