"""kapmonitor core: data model, hub, session and command line."""
