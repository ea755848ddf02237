"""The review's model: the session database as the clinician's review reads it, without Qt.

It owns the :class:`~kapmonitor.record.store.Store`; the session browser lists and filters what
:meth:`ReviewModel.sessions` returns, and each review window drives the
:class:`~kapmonitor.review.session_review.SessionReview` that :meth:`ReviewModel.open` gives it.
Nothing in ``ui/`` touches the store.
"""

from __future__ import annotations

import getpass

from alarms.profile import CourseRule
from kapmonitor.record.recorder import open_store
from kapmonitor.record.session import SessionInfo
from kapmonitor.record.store import Store
from kapmonitor.review.course import Course, open_course
from kapmonitor.review.session_review import SessionReview


class ReviewModel:
    """Every recorded session of one database, for review."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def connect(cls, url: str | None) -> ReviewModel:
        """The database at ``url`` (default: the user's), ready for review: interrupted sessions
        are marked as such and listed like the others, so nothing recorded is hidden."""
        store, _ = open_store(url)
        return cls(store)

    @property
    def url(self) -> str:
        """Where the sessions are, for the browser's title."""
        return self._store.db.url

    def sessions(self) -> list[SessionInfo]:
        """Every session's header (no measurements), newest first."""
        return self._store.list_sessions()

    def session_info(self, session_id: int) -> SessionInfo:
        """One session's header; a UserError naming the database for an id it does not hold."""
        return self._store.session_info(session_id)

    def open(self, session_id: int, reviewer: str | None = None) -> SessionReview:
        """One session, loaded for review by ``reviewer`` (default: the login name)."""
        return SessionReview(self._store, session_id, reviewer or getpass.getuser())

    def course(self, patient: str, rule: CourseRule | None = None) -> Course:
        """The patient's treatment course, oldest session first (figures kept in the database);
        ``rule``: the clinic's course rule (default kap-default's)."""
        return open_course(self._store, patient, rule)

    def close(self) -> None:
        self._store.db.close()
