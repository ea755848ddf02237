"""The clinic bus: each dosing room publishes over MQTT, a nurse station watches them all.

The room stays the primary alarm system; the station is a secondary, distributed one (IEC
60601-1-8): it shows the rooms' alarms, never decides them, and a lost link is itself an alarm.
Plain Python, no Qt: the station window (ui/) draws :class:`~kapmonitor.station.model.StationModel`.
"""
