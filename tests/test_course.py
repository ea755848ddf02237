"""The treatment course: sessions recorded headless at different doses, read back side by side.

The sessions are real simulated recordings (``kapmonitor record --device sim:typical``) in a
real SQLite database; every figure of the course is checked against the session's own review
summary, so the course can never disagree with the session it summarises.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from alarms.profile import CourseRule, ProfileError, load_profile
from kapmonitor.cli import main
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.review.changes import DetailsChange
from kapmonitor.review.course import course_notes, course_rule, open_course
from kapmonitor.review.session_review import SessionReview
from kapmonitor.review.summary import summarise

PATIENT = "KAP-C-0042"
DOSES = (30.0, 45.0, 60.0)
WEIGHT = 72.0
ROOT = Path(__file__).resolve().parent.parent


def _record(url: str, patient: str, dose: float | None, seed: int) -> None:
    argv = ["record", "--device", "sim:typical", "--speed", "5000", "--duration", "50m",
            "--no-waves", "--seed", str(seed), "--db", url, "--patient", patient,
            "--drug", "ketamine", "--route", "im", "--weight", str(WEIGHT),
            "--indication", "treatment-resistant depression"]  # fmt: skip
    if dose is not None:
        argv += ["--dose", str(dose)]
    assert main(argv, out=io.StringIO()) == 0


@pytest.fixture(scope="module")
def course_db(tmp_path_factory) -> str:
    """Three sessions of one patient at rising doses, one interrupted session, and a patient
    with a single session."""
    folder = tmp_path_factory.mktemp("course")
    url = f"sqlite:///{folder / 'course.sqlite3'}"
    for seed, dose in enumerate(DOSES, 1):
        _record(url, PATIENT, dose, seed)
    _record(url, "KAP-ONE-1", None, 9)
    store = Store(open_database(url))
    # A session cut off (the recorder died): no data, no dose, never dropped from the course.
    cut = store.create_session(SessionSetup(PATIENT, operator="nurse"))
    store.end_session(cut, SessionStatus.INTERRUPTED, None, who="kapmonitor")
    store.db.close()
    return url


def _course_json(url: str, patient: str) -> dict:
    out = io.StringIO()
    assert main(["course", patient, "--db", url, "--json"], out=out) == 0
    return json.loads(out.getvalue())


def test_json_matches_each_sessions_own_summary(course_db):
    course = _course_json(course_db, PATIENT)
    assert course["patient"] == PATIENT
    rows = course["sessions"]
    assert [r["dose"] for r in rows] == [*DOSES, None]  # oldest first; the cut-off one last
    assert [r["started"] for r in rows] == sorted(r["started"] for r in rows)
    store = Store(open_database(course_db))
    try:
        for row in rows[:3]:
            record = store.load_session(row["session_id"], waves=False)
            s = summarise(record)
            assert s.baseline is not None and s.max_rise_systolic and s.max_rise_diastolic
            assert row["dose_unit"] == "mg"
            assert row["baseline_systolic"] == pytest.approx(s.baseline.systolic)
            assert row["baseline_diastolic"] == pytest.approx(s.baseline.diastolic)
            assert row["rise_systolic"] == pytest.approx(s.max_rise_systolic.value)
            assert row["rise_diastolic"] == pytest.approx(s.max_rise_diastolic.value)
            assert row["minutes_to_peak"] == pytest.approx(s.max_rise_systolic.minutes_from_dose)
            assert row["recovery_minutes"] == s.recovery_minutes
            assert s.lowest_spo2 is not None and row["lowest_spo2"] == s.lowest_spo2.value
            assert row["monitored_minutes"] == pytest.approx(s.monitored_minutes)
            assert row["alarms_high"] == sum(
                1 for e in record.alarms if e.event.value == "active" and e.priority.value == "high"
            )
            assert row["weight_kg"] == WEIGHT
            assert row["dose_per_kg"] == pytest.approx(row["dose"] / WEIGHT)
            assert row["indication"] == "treatment-resistant depression"
            assert row["deepest_sedation"] is None and row["strongest_dissociation"] is None
            post = [p for p in row["bp_course"] if p[0] >= 0]
            assert max(p[1] for p in post) - s.baseline.systolic == pytest.approx(
                row["rise_systolic"]
            )
    finally:
        store.db.close()


def test_interrupted_session_is_listed_marked_and_empty_not_zero(course_db):
    last = _course_json(course_db, PATIENT)["sessions"][-1]
    assert last["interrupted"] is True and last["status"] == "interrupted"
    for key in ("dose", "baseline_systolic", "rise_systolic", "rise_diastolic", "lowest_spo2",
                "recovery_minutes", "monitored_minutes", "dose_per_kg"):  # fmt: skip
        assert last[key] is None, key


def test_one_session_says_nothing_to_compare_and_no_amount_is_null(course_db):
    course = _course_json(course_db, "KAP-ONE-1")
    assert len(course["sessions"]) == 1
    assert any("nothing to compare yet" in n for n in course["notes"])
    row = course["sessions"][0]
    assert row["dose"] is None and row["dose_per_kg"] is None
    # The simulated dose time is known, its amount is not: the rise is there, the dose empty.
    assert row["rise_systolic"] is not None


def test_unknown_patient_is_one_sentence_with_close_matches(course_db, capsys):
    assert main(["course", "KAP-C-0024", "--db", course_db, "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "KAP-C-0042" in err[0] and "Traceback" not in err[0]


def test_figures_are_kept_and_recomputed_after_an_amendment(course_db):
    store = Store(open_database(course_db))
    try:
        first = open_course(store, PATIENT)

        def no_reading(session_id: int):
            raise AssertionError(f"session {session_id} was read again")

        again = open_course(store, PATIENT, load=no_reading)  # kept: no samples read
        assert again == first
        target = first.sessions[0].session_id
        review = SessionReview(store, target, "Dr Reviewer")
        review.set_details(DetailsChange(80.0, "PTSD", "weighed again at intake"))
        read: list[int] = []

        def counting(session_id: int):
            read.append(session_id)
            return store.load_session(session_id, waves=False)

        amended = open_course(store, PATIENT, load=counting)
        assert read == [target]  # only the amended session is computed again
        row = amended.sessions[0]
        assert row.weight_kg == 80.0 and row.indication == "PTSD"
        assert row.dose_per_kg == pytest.approx(DOSES[0] / 80.0)
        audit = [a for a in store.audit_log(target) if a.action == "details-set"]
        assert audit and "weighed again" in audit[-1].detail and audit[-1].who == "Dr Reviewer"
        # A note added in review is a new event: the figures are checked again too.
        store.add_event(target, "note", "reviewed", "Dr Reviewer")
        read.clear()
        open_course(store, PATIENT, load=counting)
        assert read == [target]
    finally:
        store.db.close()


def test_amendment_without_reason_or_impossible_weight_is_refused(course_db):
    from kapmonitor.core.errors import UserError

    store = Store(open_database(course_db))
    try:
        sid = store.list_sessions(patient=PATIENT)[0].id
        review = SessionReview(store, sid, "Dr Reviewer")
        with pytest.raises(UserError):
            review.set_details(DetailsChange(70.0, "", " "))
        with pytest.raises(UserError):
            review.set_details(DetailsChange(7000.0, "", "typo"))
        with pytest.raises(UserError):
            review.set_details(DetailsChange(0.0, "", "typo"))
    finally:
        store.db.close()


def test_note_follows_the_clinics_rule(course_db):
    course = _course_json(course_db, PATIENT)
    store = Store(open_database(course_db))
    try:
        c = open_course(store, PATIENT)
    finally:
        store.db.close()
    dosed = c.sessions[:3]
    last = dosed[-1]
    assert last.rise_systolic is not None
    # A rule just under and just over the last dosed session's own rise.
    below = CourseRule(rise_systolic=last.rise_systolic - 0.5, high_alarm=False)
    above = CourseRule(rise_systolic=last.rise_systolic + 0.5, high_alarm=False)
    assert any("systolic rise" in n for n in course_notes(dosed, below))
    assert not any("systolic rise" in n for n in course_notes(dosed, above))
    for note in course["notes"]:  # it informs, it never prescribes
        assert not any(w in note.lower() for w in ("reduce", "increase", "lower the", "should"))


def test_pdf_report_text_a4_and_letter(course_db, tmp_path):
    course = _course_json(course_db, PATIENT)
    for paper, width in (("a4", 842), ("letter", 792)):
        out = tmp_path / f"course-{paper}.pdf"
        assert main(["course", PATIENT, "--db", course_db, "-o", str(out), "--paper", paper]) == 0
        reader = PdfReader(out)
        assert round(float(reader.pages[0].mediabox.width)) == width  # landscape
        text = "\n".join(p.extract_text() for p in reader.pages)
        assert PATIENT in text and "KAP treatment course" in text
        assert "Dose against peak rise" in text and "Time to recover" in text
        assert "INTERRUPTED" in text
        for row in course["sessions"][:3]:
            assert f"{row['dose']:g} mg" in text
            assert f"{row['rise_systolic']:.0f}/{row['rise_diastolic']:.0f}" in text


def test_pdf_needs_a_pdf_name(course_db, capsys, tmp_path):
    assert main(["course", PATIENT, "--db", course_db, "-o", str(tmp_path / "x.txt")]) == 2
    assert "PDF" in capsys.readouterr().err


def test_whole_process_json(course_db):
    done = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "course", PATIENT, "--db", course_db, "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["sessions"]) == 4


# --- the window (pytest-qt) -------------------------------------------------------------------


def test_window_table_and_charts_show_the_course(course_db, qtbot):
    from PySide6 import QtCore

    from kapmonitor.review.model import ReviewModel
    from ui.review.app import ReviewApp

    reviews = ReviewModel.connect(course_db)
    try:
        app = ReviewApp(reviews)
        browser = app.show_browser()
        qtbot.addWidget(browser)
        browser.patient.setText(PATIENT)
        with qtbot.waitSignal(browser.open_course) as asked:
            qtbot.mouseClick(browser.course_button, QtCore.Qt.MouseButton.LeftButton)
        assert asked.args == [PATIENT]
        window = app.courses[PATIENT]
        qtbot.addWidget(window)
        course = reviews.course(PATIENT)
        table = window.table
        assert table.rowCount() == len(course.sessions) == 4
        header = [
            table.horizontalHeaderItem(c).text().replace("\n", " ")
            for c in range(table.columnCount())
        ]
        dose_col, rise_col = header.index("dose"), header.index("rise sys/dia")
        for row, s in enumerate(course.sessions):
            dose = table.item(row, dose_col).text()
            assert dose == ("" if s.dose is None else f"{s.dose:g} mg")  # empty, never 0
            if s.rise_systolic is not None:
                assert table.item(row, rise_col).text().startswith(f"{s.rise_systolic:.0f}/")
        assert "INTERRUPTED" in table.item(3, header.index("date")).text()
        # Charts: one dot per dosed session per pressure, one line per session with BP.
        sys_dots, dia_dots = window.rise_plot.getPlotItem().listDataItems()
        xs, ys = sys_dots.getData()
        assert list(xs) == list(DOSES)
        assert list(ys) == pytest.approx([s.rise_systolic for s in course.sessions[:3]])
        assert list(dia_dots.getData()[1]) == pytest.approx(
            [s.rise_diastolic for s in course.sessions[:3]]
        )
        assert len(window.overlay_plot.getPlotItem().listDataItems()) == 3
        (recovery,) = window.recovery_plot.getPlotItem().listDataItems()
        known = [s.recovery_minutes for s in course.sessions if s.recovery_minutes is not None]
        assert list(recovery.getData()[1]) == pytest.approx(known)
    finally:
        reviews.close()


def test_start_dialog_sets_weight_and_indication_or_leaves_them_out(qtbot):
    from ui.start_dialog import StartDialog

    given = StartDialog(
        list_ports=lambda: [],
        defaults=SessionSetup("P", weight_kg=64.5, indication="treatment-resistant depression"),
    )
    qtbot.addWidget(given)
    setup = given.setup()
    assert (setup.weight_kg, setup.indication) == (64.5, "treatment-resistant depression")
    blank = StartDialog(list_ports=lambda: [], defaults=SessionSetup("P"))
    qtbot.addWidget(blank)
    qtbot.keyClicks(blank.indication, "  ")
    assert (blank.setup().weight_kg, blank.setup().indication) == (None, "")  # never 0 kg


# --- the clinic's rule, from the profile ------------------------------------------------------


def _profile_with_course(tmp_path, course: str) -> Path:
    text = (ROOT / "alarms" / "profiles" / "kap-default.toml").read_text(encoding="utf-8")
    head, _, _ = text.partition("[course]")
    path = tmp_path / "clinic.toml"
    path.write_text(head + course, encoding="utf-8")
    return path


def test_the_rule_comes_from_the_profile_and_old_profiles_take_kap_defaults(tmp_path):
    assert course_rule() == CourseRule(rise_systolic=40.0, high_alarm=True)  # kap-default's
    own = load_profile(
        str(_profile_with_course(tmp_path, "[course]\nrise_systolic = 25\nhigh_alarm = false\n"))
    )
    assert course_rule(own) == CourseRule(25.0, False)
    old = load_profile(str(_profile_with_course(tmp_path, "")))  # written before the course
    assert old.course is None and course_rule(old) == course_rule()


@pytest.mark.parametrize(
    "course",
    [
        "rise_systolic = 0\nhigh_alarm = true",  # every session noted
        "rise_systolic = 1000\nhigh_alarm = true",  # none ever
        "rise_systolic = inf\nhigh_alarm = true",
        "rise_systolic = nan\nhigh_alarm = true",
        'rise_systolic = "forty"\nhigh_alarm = true',
        'rise_systolic = 40\nhigh_alarm = "yes"',
        "rise_systolic = 40",
        "rise_systolic = 40\nhigh_alarm = true\nlow_alarm = true",
    ],
)
def test_a_course_rule_that_could_never_or_always_note_is_refused(
    course_db, tmp_path, capsys, course
):
    path = _profile_with_course(tmp_path, f"[course]\n{course}\n")
    with pytest.raises(ProfileError):
        load_profile(str(path))
    argv = ["course", PATIENT, "--db", course_db, "--json", "--profile", str(path)]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[course]" in err and "Traceback" not in err


def test_the_command_line_notes_by_the_clinics_rule(course_db, tmp_path):
    strict = _profile_with_course(tmp_path, "[course]\nrise_systolic = 10\nhigh_alarm = true\n")
    out = io.StringIO()
    argv = ["course", PATIENT, "--db", course_db, "--json", "--profile", str(strict)]
    assert main(argv, out=out) == 0
    assert json.loads(out.getvalue())["rule"] == {"rise_systolic": 10.0, "high_alarm": True}
    assert _course_json(course_db, PATIENT)["rule"] == {"rise_systolic": 40.0, "high_alarm": True}
