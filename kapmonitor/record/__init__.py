"""The session record: the database, the recorder thread, and what reads a session back."""
