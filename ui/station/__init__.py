"""The nurse station window: every dosing room on one screen (``kapmonitor station``).

A secondary, distributed alarm system in the sense of IEC 60601-1-8: it shows and sounds what
each room's own alarm system decided, and raises one alarm of its own, "room link lost". It
reads :class:`kapmonitor.station.model.StationModel` on its own timer, never from the MQTT
client's thread.
"""
