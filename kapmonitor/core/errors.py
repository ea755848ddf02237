"""Errors that are the user's to fix.

Their message is one plain sentence, shown without a traceback.
"""


class UserError(Exception):
    """Something the user asked for cannot be done as asked (bad port, bad file, unknown name)."""


class ScenarioError(UserError):
    """A simulator scenario is missing or its file has an error."""


class PortError(UserError):
    """A serial port or URL cannot be opened."""
