"""The review model without Qt: the session list, one session's record and figures, the pleth
for a stretch of minutes, and what the reviewer writes (notes, amendments, the assessment).

The session is the real 2-hour simulated KAP session written through the store into a SQLite
file (tests/session_fixtures.py); every test that writes works on its own copy of the file.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.review import rems
from kapmonitor.review.changes import Amendment, Assessment
from kapmonitor.review.model import ReviewModel
from kapmonitor.review.session_review import SessionReview
from tests.session_fixtures import PATIENT, START, store_session

REVIEWER = "Dr Reviewer"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A SQLite file holding the 2-hour session and an older interrupted one; the session's id."""
    folder = tmp_path_factory.mktemp("review-model")
    path = folder / "review.sqlite3"
    store = Store(open_database(f"sqlite:///{path}"))
    session_id = store_session(store, folder)
    older = store.create_session(SessionSetup("KAP-PT-000002", "Dr Osei"), started=START - 86400)
    store.end_session(older, SessionStatus.INTERRUPTED, START - 86400 + 600)
    store.db.close()
    return path, session_id


@pytest.fixture
def reviews(recorded: tuple[Path, int], tmp_path: Path) -> Iterator[ReviewModel]:
    """The model over a copy of the database, so a test's writes stay its own."""
    copy = tmp_path / "review.sqlite3"
    shutil.copy(recorded[0], copy)
    model = ReviewModel.connect(f"sqlite:///{copy}")
    yield model
    model.close()


@pytest.fixture
def review(reviews: ReviewModel, recorded: tuple[Path, int]) -> SessionReview:
    return reviews.open(recorded[1], REVIEWER)


def test_the_sessions_are_listed_newest_first(
    reviews: ReviewModel, recorded: tuple[Path, int], tmp_path: Path
) -> None:
    sessions = reviews.sessions()
    assert [s.patient for s in sessions] == [PATIENT, "KAP-PT-000002"]
    assert sessions[1].status is SessionStatus.INTERRUPTED
    assert str(tmp_path) in reviews.url
    assert reviews.session_info(recorded[1]).patient == PATIENT
    with pytest.raises(UserError, match="there is no session 999"):
        reviews.session_info(999)


def test_a_session_opens_without_its_pleth_and_exports_with_it(review: SessionReview) -> None:
    assert review.reviewer == REVIEWER
    assert review.record.info.patient == PATIENT
    assert not review.record.waves  # the trends do not need 720,000 samples
    assert review.timeline.dose_relative
    assert review.summary.peak_systolic is not None
    rows = dict(review.rems_form().rows())
    assert rows["Dissociation"].startswith("Yes")  # the nurse's marker, until assessed
    full = review.full_record()
    assert any(b.code is Code.PLETH for b in full.waves)
    assert len(full.numerics) == len(review.record.numerics)


def test_the_reviewer_gets_the_login_name_unless_named(
    reviews: ReviewModel, recorded: tuple[Path, int]
) -> None:
    import getpass

    assert reviews.open(recorded[1]).reviewer == getpass.getuser()


def test_the_pleth_of_a_stretch_of_minutes(review: SessionReview) -> None:
    x, y = review.pleth(30.0, 30.5)
    fs = review.full_record().waves[0].fs
    shown = np.isfinite(y[(x >= 30.0) & (x <= 30.5)]).sum()
    assert shown == pytest.approx(30 * fs, rel=0.05)  # half a minute of samples
    assert np.all(np.diff(x) >= 0)  # in time order (a hole shares its first sample's time)
    x, y = review.pleth(20.5, 20.9)  # the probe was off: a hole, not a flat line
    assert not np.isfinite(y[(x >= 20.6) & (x <= 20.8)]).any()


def test_a_note_is_written_at_its_minute_signed_and_audited(review: SessionReview) -> None:
    event_id, stamp = review.add_note("  BP checked by hand 150/95 ", 45.0)
    note = next(e for e in review.record.events if e.id == event_id)  # read back already
    assert (note.kind, note.text, note.author) == ("note", "BP checked by hand 150/95", REVIEWER)
    assert note.stamp.wall == pytest.approx(stamp.wall)
    assert review.timeline.minutes(note.stamp.wall) == pytest.approx(45.0)
    assert any(a.action == "note-added" and a.who == REVIEWER for a in review.audit_log())
    before = len(review.record.events)
    with pytest.raises(UserError, match="a note needs some text"):
        review.add_note("   ", 45.0)
    review.reload()
    assert len(review.record.events) == before


def test_an_amendment_keeps_the_original_and_says_why(review: SessionReview) -> None:
    note = next(e for e in review.record.events if e.text == "feels calm, BP settling")
    incomplete = Amendment(note.id, "feels calm", " ")
    assert incomplete.missing() == ["a reason"]
    with pytest.raises(UserError, match="corrected text and a reason"):
        review.amend(incomplete)
    with pytest.raises(UserError, match="there is no event 99999"):
        review.amend(Amendment(99999, "x", "y"))
    new_id = review.amend(Amendment(note.id, "feels calm; asked for water", "incomplete"))
    events = {e.id: e for e in review.record.events}
    assert events[note.id].text == "feels calm, BP settling"  # kept as it was
    correction = events[new_id]
    assert (correction.amends, correction.author) == (note.id, REVIEWER)
    assert correction.stamp == note.stamp
    assert any(
        a.action == "amended" and "(reason: incomplete)" in a.detail for a in review.audit_log()
    )


def test_the_assessment_is_one_signed_event_per_field(review: SessionReview) -> None:
    with pytest.raises(UserError, match="choose at least one answer"):
        review.save_assessment(Assessment())
    ids = review.save_assessment(Assessment({rems.SEDATION: False}, ready_to_leave="12:05"))
    written = [e for e in review.record.events if e.id in ids]
    assert {e.text for e in written} == {"sedation: no", "ready to leave: 12:05"}
    assert all(e.kind == rems.ASSESSMENT_KIND and e.author == REVIEWER for e in written)
    rows = dict(review.rems_form().rows())
    assert rows["Sedation"].startswith("No") and REVIEWER in rows["Sedation"]
    assert rows["Ready to leave"].startswith("12:05")
