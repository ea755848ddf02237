"""The KAP-session simulator: a physiological model, scenarios, and the in-process driver."""
