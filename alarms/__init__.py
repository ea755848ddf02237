"""Alarm system: decides alarm conditions, priorities and states from the measurement stream."""
