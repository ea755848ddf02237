"""``kapmonitor review [ID]``: the session browser, or one session's review window."""

from __future__ import annotations

from alarms.profile import CourseRule
from kapmonitor.review.model import ReviewModel
from ui.review.browser import SessionBrowser
from ui.review.course_window import CourseWindow
from ui.review.window import ReviewWindow
from ui.system_stop import SystemStop


class ReviewApp:
    """The browser and the review windows it opened (kept here so they are not collected)."""

    def __init__(self, reviews: ReviewModel, reviewer: str | None = None) -> None:
        self.reviews = reviews
        self.reviewer = reviewer
        self.windows: dict[int, ReviewWindow] = {}
        self.browser: SessionBrowser | None = None
        self.courses: dict[str, CourseWindow] = {}
        self.course_rule: CourseRule | None = None  #: None: kap-default's

    def show_browser(self) -> SessionBrowser:
        self.browser = SessionBrowser(self.reviews)
        self.browser.open_session.connect(self.open)
        self.browser.open_course.connect(self.open_course)
        self.browser.resize(1300, 800)
        self.browser.show()
        return self.browser

    def open_course(self, patient: str) -> CourseWindow:
        """The patient's course, read again each time it is opened (a session may have ended)."""
        window = CourseWindow(self.reviews.course(patient, self.course_rule))
        self.courses[patient] = window
        window.resize(1500, 900)
        window.show()
        window.raise_()
        return window

    def open(self, session_id: int) -> ReviewWindow:
        window = self.windows.get(session_id)
        if window is None or not window.isVisible():
            window = ReviewWindow(self.reviews.open(session_id, self.reviewer))
            self.windows[session_id] = window
            window.resize(1600, 1000)
        window.showMaximized()
        window.raise_()
        return window


def run_course(patient: str, db_url: str | None, rule: CourseRule | None = None) -> int:
    """``kapmonitor course PATIENT``: the course window alone, noting by the clinic's ``rule``."""
    from ui.app import _application

    app = _application()
    reviews = ReviewModel.connect(db_url)
    review = ReviewApp(reviews)
    review.course_rule = rule
    try:
        review.open_course(patient)  # an unknown patient: one sentence, before any window
        stop = SystemStop(app)
        stop.stop_requested.connect(lambda signum: app.exit(128 + signum))
        try:
            return app.exec()
        finally:
            stop.uninstall()
    finally:
        reviews.close()


def run(session_id: int | None, db_url: str | None, reviewer: str | None = None) -> int:
    from ui.app import _application

    app = _application()
    reviews = ReviewModel.connect(db_url)  # interrupted sessions are listed as such
    review = ReviewApp(reviews, reviewer)
    if session_id is None:
        review.show_browser()
    else:
        reviews.session_info(session_id)  # a wrong id is a one-line error, before any window
        review.open(session_id)
    stop = SystemStop(app)  # SIGTERM, SIGINT: close the database and exit
    stop.stop_requested.connect(lambda signum: app.exit(128 + signum))
    try:
        return app.exec()
    finally:
        stop.uninstall()
        reviews.close()
