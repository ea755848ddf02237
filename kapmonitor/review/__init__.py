"""Review of a recorded session: the figures and form fields the review window and the PDF share.

Plain Python over :class:`~kapmonitor.record.session.SessionRecord` (no Qt), so the window, the
report and the tests compute every number the same way. :mod:`~kapmonitor.review.model` and
:mod:`~kapmonitor.review.session_review` are the review's model: they own the store, and the
review window and session browser are views over them.
"""
