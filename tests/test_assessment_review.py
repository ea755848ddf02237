"""Sedation and dissociation scores on the record side (issue 17): the review summary, the REMS
form, the PDF report, every export, de-identification, the course and the review window.

The main record is real: a :class:`SessionRunner` on ``sim:typical`` at high speed into a SQLite
file, with ``runner.add_assessment`` called as a nurse would at chosen session minutes, and the
expected figures worked out from the stamps the runner returned. Edge cases (no dose, a MOAA/S
that never resolves, only dissociation scored, sedation that comes back, a CADSS profile, an old
record with only the free-text dissociation marker) are hand-built records with answers worked
out by hand.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import gzip
import io
import json
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis.strategies import integers as st_integers
from hypothesis.strategies import lists as st_lists
from hypothesis.strategies import tuples as st_tuples
from pypdf import PdfReader

from kapmonitor.cli import main
from kapmonitor.core.assessment import SOURCE
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Numeric, SessionEventKind, Stamp
from kapmonitor.export import export_session
from kapmonitor.export.deidentify import deidentified
from kapmonitor.record.db import open_database
from kapmonitor.record.session import (
    Drug,
    EventRecord,
    Route,
    SessionInfo,
    SessionRecord,
    SessionSetup,
    SessionStatus,
)
from kapmonitor.record.store import Store
from kapmonitor.review.course import cells, open_course
from kapmonitor.review.rems import ASSESSMENT_KIND, rems_form
from kapmonitor.review.scores import session_scores, summarise_scores
from kapmonitor.review.summary import clock, summarise
from kapmonitor.runner import SessionConfig, SessionRunner

ROOT = Path(__file__).resolve().parents[1]
PATIENT = "KAP-S-17"
LEE, MOE = "RN Lee Abernethy", "RN Moe Castellanos"
#: (session minutes from the start, MOAA/S, dissociation, scorer); the dose at minute 5.
PLAN = [(3, 5, 0, LEE), (20, 3, 2, LEE), (35, 2, 1, MOE), (50, 4, 0, MOE)]
DOSE_MIN = 5


@dataclasses.dataclass
class Scored:
    url: str
    session_id: int
    dose: Stamp
    stamps: list[Stamp]  #: one per PLAN row

    def record(self) -> SessionRecord:
        store = Store(open_database(self.url))
        try:
            return store.load_session(self.session_id, waves=False)
        finally:
            store.db.close()


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Scored:
    url = f"sqlite:///{tmp_path_factory.mktemp('scores') / 'k.sqlite3'}"
    setup = SessionSetup(
        patient=PATIENT, devices=("sim:typical",), clinician="Dr Kay", operator=LEE,
        drug=Drug.ESKETAMINE, route=Route.INTRANASAL, dose=56, dose_unit="mg",
    )  # fmt: skip
    runner = SessionRunner(SessionConfig(setup, db_url=url, speed=1000, seed=5, until=60 * 60))
    runner.start()
    stamps = []
    try:
        start = runner.now()

        def wait(minutes: float) -> None:
            deadline = time.monotonic() + 60
            while (runner.now().mono - start.mono) / 60 < minutes:
                assert time.monotonic() < deadline, "the simulated session stalled"
                runner.poll()
                time.sleep(0.005)

        dose = None
        for minute, moaas, dissociation, who in PLAN:
            if dose is None and minute > DOSE_MIN:
                wait(DOSE_MIN)
                dose = runner.dose_given(LEE)
            wait(minute)
            stamps.append(
                runner.add_assessment({Code.MOAAS: moaas, Code.DISSOCIATION: dissociation}, who)
            )
        deadline = time.monotonic() + 60
        while not runner.finished():
            assert time.monotonic() < deadline
            runner.poll()
            time.sleep(0.02)
    finally:
        runner.stop(who=LEE)
    assert dose is not None
    return Scored(url, runner.session_id, dose, stamps)


@pytest.fixture(scope="module")
def rec(scored) -> SessionRecord:
    return scored.record()


def text_of(pdf: Path) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(pdf).pages)


# --- the record keeps the scores ------------------------------------------------------------------


def test_the_record_keeps_each_score_with_its_words_and_scorer(scored, rec):
    scores = session_scores(rec)
    expected = [
        (st.wall, code, value, who)
        for st, (_, moaas, dis, who) in zip(scored.stamps, PLAN, strict=True)
        for code, value in ((Code.MOAAS, moaas), (Code.DISSOCIATION, dis))
    ]
    assert [(s.wall, s.scale.code, s.value, s.author) for s in scores] == expected
    assert scores[2].words == "MOAA/S 3: responds only after name is called loudly or repeatedly"
    assert scores[2].minutes_from_dose == pytest.approx(
        (scored.stamps[1].wall - scored.dose.wall) / 60
    )
    assert scores[0].minutes_from_dose < 0  # scored before the dose


def test_the_record_keeps_scores_on_postgresql(postgres, scored, rec):
    """The same scores through a real PostgreSQL server: numerics and their events."""
    url = postgres.new_database()
    store = Store(open_database(url))
    try:
        sid = store.create_session(SessionSetup(PATIENT), None, started=rec.info.started)
        items = [n for n in rec.numerics if n.source == SOURCE]
        store.write(sid, items, [])
        for e in rec.events:
            if e.kind == SessionEventKind.SCORE:
                store.add_event(sid, e.kind, e.text, e.author, stamp=e.stamp)
        back = store.load_session(sid, waves=False)
    finally:
        store.db.close()
    original = [(s.wall, s.scale.code, s.value, s.author) for s in session_scores(rec)]
    assert [(s.wall, s.scale.code, s.value, s.author) for s in session_scores(back)] == original


# --- the summary ----------------------------------------------------------------------------------


def rows(record: SessionRecord) -> dict[str, str]:
    return dict(summarise(record).rows())


def test_the_summary_says_deepest_strongest_and_when_each_resolved(scored, rec):
    at = [clock(s.wall) for s in scored.stamps]
    r = rows(rec)
    assert r["Deepest sedation"] == (
        f"MOAA/S 2: responds only after mild prodding or shaking at {at[2]} (+30 min)"
    )
    assert r["Sedated (MOAA/S ≤ 3)"].startswith(f"from {at[1]} (+15 min), resolved at {at[3]} (+45")
    assert r["Strongest dissociation"] == f"Dissociation 2: moderate at {at[1]} (+15 min)"
    assert r["Dissociated (Dissociation ≥ 1)"].startswith(
        f"from {at[1]} (+15 min), resolved at {at[3]}"
    )
    # The limit on MOAA/S counts scores, not seconds held between samples 15 minutes apart.
    assert r["Beyond: Deep sedation (MOAA/S 1 or 0) (< 2, medium)"] == "0 of 4 scores"
    summary = summarise(rec)
    assert summary.scores is not None
    stretch = summary.scores.sedation.stretches[0]
    assert stretch.minutes == pytest.approx((scored.stamps[3].wall - scored.stamps[1].wall) / 60)


def test_scores_are_not_a_device(scored, rec):
    """No device named "assessment" anywhere, and scores do not stretch the monitored time."""
    device_walls = [n.stamp.wall for n in rec.numerics if n.source != SOURCE]
    summary = summarise(rec)
    assert summary.monitoring_start == min(device_walls + [r.stamp.wall for r in rec.nibp])
    # A score before any device data and after the last does not move the monitored span.
    early = Numeric(SOURCE, Code.MOAAS, 5.0, Stamp(0.0, summary.monitoring_start - 600))
    late = Numeric(SOURCE, Code.MOAAS, 5.0, Stamp(1e9, summary.monitoring_end + 600))
    moved = dataclasses.replace(rec, numerics=[early, *rec.numerics, late])
    again = summarise(moved)
    assert (again.monitoring_start, again.monitoring_end) == (
        summary.monitoring_start,
        summary.monitoring_end,
    )
    labels = " ".join(label + value for label, value in summary.rows())
    assert "device assessment" not in labels and "silent" not in labels


# --- the REMS form --------------------------------------------------------------------------------


def test_the_rems_form_fills_sedation_and_dissociation_from_the_scores(scored, rec):
    at = [clock(s.wall) for s in scored.stamps]
    form = rems_form(rec)
    assert form.sedation.value is True
    assert form.sedation.text == (
        f"Yes: sedated (MOAA/S ≤ 3) from {at[1]}, deepest MOAA/S 2 at {at[2]}, resolved at {at[3]}"
    )
    assert "to be confirmed" in form.sedation.source and form.sedation.author == MOE
    assert form.dissociation.value is True
    assert form.dissociation.text.endswith(f"resolved at {at[3]}")
    assert form.dissociation.author == LEE
    printed = dict(form.rows())
    assert printed["Sedation"].endswith(f"the deepest scored by {MOE})")
    assert MOE not in " ".join(v for _, v in form.rows(names=False))
    # The respiratory depression field still comes from the breathing alarms.
    assert form.respiratory_depression.source.endswith("to be confirmed")


def test_the_clinicians_assessment_wins_over_the_scores(rec):
    last = max(e.stamp.wall for e in rec.events)
    said = EventRecord(
        99_001, Stamp(0.0, last + 1), ASSESSMENT_KIND, "sedation: no", None, "Dr Kay"
    )
    form = rems_form(dataclasses.replace(rec, events=[*rec.events, said]))
    assert form.sedation.value is False and form.sedation.author == "Dr Kay"
    assert form.dissociation.value is True  # still from the scores


# --- the PDF --------------------------------------------------------------------------------------


def test_the_pdf_has_the_scores_table_lane_and_summary(scored, rec, tmp_path):
    path = tmp_path / "report.pdf"
    export_session(rec, "pdf", path)
    text = text_of(path)
    at = [clock(s.wall) for s in scored.stamps]
    for part in (
        "Scores: MOAA/S and dissociation",  # the lane on the trends
        "Sedation and dissociation scores",  # the table
        "MOAA/S 2: responds only after mild prodding or shaking",
        "Dissociation 2: moderate",
        f"Deepest sedation MOAA/S 2: responds only after mild prodding or shaking at {at[2]}",
        f"resolved at {at[3]}",
        f"Yes: sedated (MOAA/S ≤ 3) from {at[1]}",
        MOE,
    ):
        assert part in text, part
    header = text[text.index("Devices") : text.index("Trends")]
    assert "sim:typical" in header and "assessment" not in header
    anon = tmp_path / "anon.pdf"
    export_session(rec, "pdf", anon, deidentify=True)
    anon_text = text_of(anon)
    assert "MOAA/S 2: responds only after mild prodding or shaking" in anon_text
    assert LEE not in anon_text and MOE not in anon_text


# --- the exports ----------------------------------------------------------------------------------


MOAAS_MDC = str(Code.MOAAS.info.mdc_code)


def test_csv_has_every_score_with_its_unit_and_scorer(scored, rec, tmp_path):
    path = tmp_path / "s.csv"
    export_session(rec, "csv", path)
    table = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    scores = [
        (r["code"], r["value"], r["unit"], r["person"])
        for r in table
        if r["kind"] == "measurement" and r["code"].startswith("KAP_SCORE")
    ]
    assert scores == [
        (code.value, str(value), "{score}", who)
        for _, moaas, dis, who in PLAN
        for code, value in ((Code.MOAAS, moaas), (Code.DISSOCIATION, dis))
    ]
    assert not [r for r in table if r["kind"] == "device" and r["device"] == SOURCE]


def test_fhir_codes_scores_with_the_private_11073_code_and_no_loinc(rec, tmp_path):
    from fhir.resources.R4B.bundle import Bundle  # R4B: the release closest to R4 it ships

    path = tmp_path / "s.json"
    export_session(rec, "fhir", path)
    raw = path.read_text(encoding="utf-8")
    Bundle.model_validate_json(raw)  # a valid R4 bundle, scores and all
    resources = [e["resource"] for e in json.loads(raw)["entry"]]
    scores = [
        r for r in resources
        if r["resourceType"] == "Observation" and r["code"]["text"] in ("MOAA/S", "Dissociation")
    ]  # fmt: skip
    assert [o["valueQuantity"]["value"] for o in scores] == [
        float(v) for _, moaas, dis, _ in PLAN for v in (moaas, dis)
    ]
    for o in scores:
        (coding,) = o["code"]["coding"]  # the IEEE 11073 code alone: no LOINC
        assert coding["system"] == "urn:iso:std:iso:11073:10101"
        assert 0xF000 <= int(coding["code"]) - 2 * 65536 <= 0xFFFF  # the private-use range
        assert o["valueQuantity"]["code"] == "{score}"
        assert o["category"][0]["coding"][0]["code"] == "survey"
        assert "device" not in o  # nobody's monitor measured it
        assert o["performer"][0]["display"] in (LEE, MOE)
    assert scores[0]["code"]["coding"][0]["code"] == MOAAS_MDC
    devices = [r for r in resources if r["resourceType"] == "Device"]
    assert devices and all(SOURCE not in json.dumps(d) for d in devices)


def test_hl7_has_each_score_as_an_obx_with_its_scorer_and_no_device(rec, tmp_path):
    path = tmp_path / "s.hl7"
    export_session(rec, "hl7", path)
    obx = [
        seg.split("|")
        for seg in path.read_bytes().decode("utf-8").split("\r")  # read_text turns \r to \n
        if seg.startswith("OBX|") and "KAP_SCORE_MOAAS" in seg
    ]
    assert [f[5] for f in obx] == [str(moaas) for _, moaas, _, _ in PLAN]
    for f in obx:
        assert f[3] == f"{MOAAS_MDC}^KAP_SCORE_MOAAS^MDC"  # no ^LN alternate
        assert f[6] == "{score}^{score}^UCUM"
        assert f[16] in (f"^{LEE}", f"^{MOE}")
        assert f[18] == ""


def test_vital_carries_the_scores_and_its_reimport_gives_them_back_as_scores(rec, tmp_path):
    path = tmp_path / "s.vital"
    export_session(rec, "vital", path)
    with warnings.catch_warnings():
        # vitaldb imports wfdb, which warns about pandas deprecations on import; its reader
        # leaves the file open.
        warnings.simplefilter("ignore")
        vitaldb = pytest.importorskip("vitaldb")
        vf = vitaldb.VitalFile(str(path))
        names = {t.name: t for t in vf.trks.values()}
        del vf
        gc.collect()
    assert [r["val"] for r in names["MOAA/S"].recs] == [float(m) for _, m, _, _ in PLAN]
    assert names["MOAA/S"].unit == "{score}"
    db = f"sqlite:///{tmp_path / 'imported.sqlite3'}"
    out = io.StringIO()
    assert main(["import", str(path), "--db", db], out=out) == 0
    store = Store(open_database(db))
    try:
        back = store.load_session(store.list_sessions()[0].id, waves=False)
    finally:
        store.db.close()
    kept = [n.value for n in back.numerics if n.code is Code.MOAAS and n.source == SOURCE]
    assert kept == [float(m) for _, m, _, _ in PLAN]
    assert [s.value for s in session_scores(back) if s.scale.code is Code.MOAAS] == [
        m for _, m, _, _ in PLAN
    ]


@pytest.mark.parametrize("fmt", ["csv", "fhir", "hl7", "vital", "pdf"])
def test_deidentified_exports_keep_the_scores_but_not_the_scorers(rec, tmp_path, fmt):
    path = tmp_path / f"anon.{fmt}"
    export_session(rec, fmt, path, deidentify=True)
    data = path.read_bytes()
    text = text_of(path) if fmt == "pdf" else (
        gzip.decompress(data).decode("latin-1") if fmt == "vital" else data.decode("utf-8")
    )  # fmt: skip
    for name in (LEE, MOE, "Lee Abernethy", "Castellanos"):
        assert name not in text, name
    assert "MOAA/S" in text or "KAP_SCORE_MOAAS" in text


def test_deidentification_keeps_the_score_words_and_drops_the_author(rec):
    anon = deidentified(rec)
    said = [e for e in anon.events if e.kind == SessionEventKind.SCORE]
    assert [e.text for e in said][2] == (
        "MOAA/S 3: responds only after name is called loudly or repeatedly"
    )
    assert all(e.author is None for e in said)
    assert [s.value for s in session_scores(anon)] == [s.value for s in session_scores(rec)]


# --- the course -----------------------------------------------------------------------------------


def test_the_course_shows_the_deepest_sedation_and_strongest_dissociation(scored, tmp_path):
    store = Store(open_database(scored.url))
    try:
        course = open_course(store, PATIENT)
    finally:
        store.db.close()
    (row,) = course.sessions
    assert (row.deepest_sedation, row.strongest_dissociation) == (2.0, 2.0)
    assert "2/2" in cells(row)
    out = io.StringIO()
    assert main(["course", PATIENT, "--db", scored.url, "--json"], out=out) == 0
    (kept,) = json.loads(out.getvalue())["sessions"]  # read back from the kept figures
    assert (kept["deepest_sedation"], kept["strongest_dissociation"]) == (2.0, 2.0)
    pdf = tmp_path / "course.pdf"
    assert main(["course", PATIENT, "--db", scored.url, "-o", str(pdf)], out=io.StringIO()) == 0
    assert "sedation / dissoc." in text_of(pdf) and "2/2" in text_of(pdf)


# --- edge cases, by hand --------------------------------------------------------------------------

START = 1767261600.0  # 2026-01-01T10:00:00Z


def st(minutes: float) -> Stamp:
    return Stamp(5000.0 + minutes * 60, START + minutes * 60)


def hand(
    scores: list[tuple[float, Code, int]],
    *,
    dose: float | None = 0.0,
    events: list[EventRecord] = (),
    profile_text: str = "",
) -> SessionRecord:
    info = SessionInfo(
        id=7, uid="0f0e0d0c-0000-4000-8000-000000000071", patient="P-71", clinician="Dr K",
        operator="RN L", drug=None, route=None, dose=None, dose_unit="mg",
        started=START - 600, ended=START + 7200, status=SessionStatus.COMPLETED,
        alarm_profile="kap-default",
    )  # fmt: skip
    oximeter = [Numeric("nonin", c, v, st(m / 2)) for m in range(-20, 240)
                for c, v in ((Code.SPO2, 97.0), (Code.PULSE_RATE, 72.0))]  # fmt: skip
    numerics = [Numeric(SOURCE, code, float(v), st(m)) for m, code, v in scores]
    from kapmonitor.core.assessment import SCALES

    said = [
        EventRecord(100 + i, st(m), "assessment", SCALES[code].describe(v), None, "RN Q")
        for i, (m, code, v) in enumerate(scores)
    ]
    base = [] if dose is None else [EventRecord(1, st(dose), "dose", "dose given")]
    return SessionRecord(
        info,
        numerics=sorted(oximeter + numerics, key=lambda n: n.stamp.wall),
        events=sorted([*base, *said, *events], key=lambda e: e.stamp.wall),
        profile_text=profile_text,
    )


def test_scores_without_a_dose_say_clock_times_only():
    r = hand([(10, Code.MOAAS, 3), (40, Code.MOAAS, 5)], dose=None)
    text = rows(r)
    assert text["Deepest sedation"] == (
        f"MOAA/S 3: responds only after name is called loudly or repeatedly at {clock(st(10).wall)}"
    )
    assert text["Sedated (MOAA/S ≤ 3)"] == (
        f"from {clock(st(10).wall)}, resolved at {clock(st(40).wall)} (30 min 00 s)"
    )
    assert rems_form(r).sedation.value is True
    assert summarise_scores(r).scores[0].minutes_from_dose is None


def test_a_moaas_that_never_resolves_says_so():
    r = hand([(15, Code.MOAAS, 4), (30, Code.MOAAS, 2), (45, Code.MOAAS, 1)])
    text = rows(r)
    assert text["Sedated (MOAA/S ≤ 3)"] == (
        f"from {clock(st(30).wall)} (+30 min), not resolved by the last score "
        f"(MOAA/S 1 at {clock(st(45).wall)})"
    )
    answer = rems_form(r).sedation
    assert answer.value is True
    assert answer.text.endswith(f"not resolved by the last score at {clock(st(45).wall)}")
    course = summarise(r).scores.sedation
    assert course.unresolved and course.resolved is None and course.worst.value == 1
    assert text["Beyond: Deep sedation (MOAA/S 1 or 0) (< 2, medium)"] == "1 of 3 scores"


def test_sedation_that_comes_back_is_a_second_stretch():
    r = hand([(15, Code.MOAAS, 3), (30, Code.MOAAS, 5), (45, Code.MOAAS, 2), (60, Code.MOAAS, 4)])
    text = rows(r)["Sedated (MOAA/S ≤ 3)"]
    assert text == (
        f"from {clock(st(15).wall)} (+15 min), resolved at {clock(st(30).wall)} (+30 min) "
        f"(15 min 00 s); again from {clock(st(45).wall)} (+45 min), resolved at "
        f"{clock(st(60).wall)} (+60 min) (15 min 00 s)"
    )
    assert rems_form(r).sedation.text.endswith(f"resolved at {clock(st(60).wall)}")


def test_only_dissociation_scored():
    r = hand([(15, Code.DISSOCIATION, 0), (30, Code.DISSOCIATION, 3), (45, Code.DISSOCIATION, 0)])
    text = rows(r)
    assert text["Deepest sedation"] == "not scored"
    assert (
        text["Strongest dissociation"]
        == f"Dissociation 3: severe at {clock(st(30).wall)} (+30 min)"
    )
    form = rems_form(r)
    assert form.sedation.value is None and form.sedation.text == "not recorded"
    assert form.dissociation.value is True


def test_never_sedated_is_a_no_for_the_clinician_to_confirm():
    r = hand([(15, Code.MOAAS, 5), (30, Code.MOAAS, 4), (30, Code.DISSOCIATION, 0)])
    assert rows(r)["Sedated (MOAA/S ≤ 3)"] == "none (2 scores)"
    form = rems_form(r)
    assert form.sedation.value is False
    assert form.sedation.text == f"No: at most deepest MOAA/S 4 at {clock(st(30).wall)}"
    assert form.dissociation.value is False


def test_no_scores_at_all():
    r = hand([])
    assert rows(r)["Sedation and dissociation"] == "not scored"
    assert "Deepest sedation" not in rows(r)
    assert rems_form(r).sedation.text == "not recorded"


def test_an_old_record_with_only_the_dissociation_marker():
    marker = EventRecord(50, st(25), "marker", "dissociation", None, "RN L")
    r = hand([], events=[marker])
    answer = rems_form(r).dissociation
    assert answer.value is True
    assert answer.text == f"Yes (marked at {clock(st(25).wall)})"
    assert rows(r)["Sedation and dissociation"] == "not scored"


def test_the_stored_profiles_cadss_cut_off_judges_dissociation():
    default = (ROOT / "alarms" / "profiles" / "kap-default.toml").read_text(encoding="utf-8")
    profile = default.replace('dissociation = "rating"', 'dissociation = "cadss"').replace(
        "dissociated_from = 1\n", "dissociated_from = 10\n"
    )
    assert 'dissociation = "cadss"' in profile and "dissociated_from = 10\n" in profile
    r = hand([(15, Code.CADSS, 8), (30, Code.CADSS, 12), (45, Code.CADSS, 9)], profile_text=profile)
    text = rows(r)
    assert text["Strongest dissociation"] == f"CADSS 12 of 92 at {clock(st(30).wall)} (+30 min)"
    assert text["Dissociated (CADSS ≥ 10)"] == (
        f"from {clock(st(30).wall)} (+30 min), resolved at {clock(st(45).wall)} (+45 min) "
        "(15 min 00 s)"
    )
    # The same scores under kap-default's rating plan: judged by the CADSS's own cut-off (5).
    assert rows(hand([(15, Code.CADSS, 8)]))["Dissociated (CADSS ≥ 5)"].startswith("from")


def test_a_rems_answer_event_is_not_a_score():
    said = EventRecord(60, st(70), ASSESSMENT_KIND, "dissociation: no", None, "Dr K")
    r = hand([(15, Code.MOAAS, 3)], events=[said])
    assert [s.scale.code for s in session_scores(r)] == [Code.MOAAS]
    assert rems_form(r).dissociation.value is False  # the clinician's answer


# --- the review window ----------------------------------------------------------------------------


def test_the_review_window_shows_the_scores_lane_events_and_rems(scored, qtbot, tmp_path):
    from kapmonitor.review.model import ReviewModel
    from ui.review.window import ReviewWindow

    store = Store(open_database(scored.url))
    try:
        w = ReviewWindow(ReviewModel(store).open(scored.session_id, "Dr Rev"))
        qtbot.addWidget(w)
        w.resize(1600, 1000)
        w.show()
        qtbot.waitExposed(w)
        lane = w.plots.plots["scores"]
        assert lane.isVisible()
        numbers = [(round(i.pos().x(), 3), i.toPlainText()) for i in w.plots.score_items]
        at = [round(w.timeline.minutes(s.wall), 3) for s in scored.stamps]
        moaas = [(x, str(row[1])) for x, row in zip(at, PLAN, strict=True)]
        dissociation = [(x, str(row[2])) for x, row in zip(at, PLAN, strict=True)]
        assert numbers == moaas + dissociation  # the MOAA/S lane, then the dissociation lane
        # Score events are drawn by the lane, not as dashed lines with labels.
        labels = [line.label.toPlainText() for line in w.plots.event_labels]
        assert labels and not [x for x in labels if "MOAA/S" in x]
        events = [
            (w.events_table.item(r, 2).text(), w.events_table.item(r, 3).text())
            for r in range(w.events_table.rowCount())
        ]
        assert ("score: MOAA/S 2: responds only after mild prodding or shaking", MOE) in events
        rems = {
            w.rems_table.item(r, 0).text(): w.rems_table.item(r, 1).text()
            for r in range(w.rems_table.rowCount())
        }
        assert rems["Sedation"].startswith("Yes: sedated (MOAA/S ≤ 3)")
        assert rems["Dissociation"].startswith("Yes: dissociated (Dissociation ≥ 1)")
        assert w.assessment["sedation"].currentData() is None  # the clinician still confirms
        summary = {
            w.summary_table.item(r, 0).text(): w.summary_table.item(r, 1).text()
            for r in range(w.summary_table.rowCount())
        }
        assert summary["Deepest sedation"].startswith("MOAA/S 2")
        w.plots.set_cursor(w.timeline.minutes(scored.stamps[2].wall) + 1)
        assert "MOAA/S 2 at +30 min" in w.readout.text()
        assert "Dissociation 1 at +30 min" in w.readout.text()
        w.plots.set_cursor(30.0)
        shot = tmp_path / "review-scores.png"
        assert w.grab().save(str(shot)) and shot.stat().st_size > 20_000
        w.close()
    finally:
        store.db.close()


def test_a_session_without_scores_has_no_scores_lane(qtbot):
    from kapmonitor.review.timeline import Timeline
    from ui.review.plots import ReviewPlots

    r = hand([])
    plots = ReviewPlots(Timeline.from_record(r, summarise(r).scores))
    qtbot.addWidget(plots)
    assert not plots.plots["scores"].isVisible() and not plots.score_items


@settings(max_examples=300, deadline=None)
@given(st_lists(st_tuples(st_integers(0, 5), st_integers(0, 3)), max_size=12))
def test_stretches_start_in_the_state_and_resolve_at_the_first_score_out_of_it(values):
    """For any run of scores: each stretch starts at a score in the state, right after one out
    of it (or at the first); it resolves at the first later score out of it; every score in the
    state lies in exactly one stretch; only the last stretch may be unresolved."""
    r = hand(
        [(10.0 * i, code, v) for i, (m, d) in enumerate(values)
         for code, v in ((Code.MOAAS, m), (Code.DISSOCIATION, d))]
    )  # fmt: skip
    summary = summarise_scores(r)
    for course in (summary.sedation, summary.dissociation):
        if not values:
            assert course is None
            continue
        scores = list(course.scores)
        for n, stretch in enumerate(course.stretches):
            i = scores.index(stretch.start)
            assert course.inside(stretch.start) and (i == 0 or not course.inside(scores[i - 1]))
            later = scores[i + 1 :]
            out = next((s for s in later if not course.inside(s)), None)
            assert stretch.resolved == out
            assert out is not None or n == len(course.stretches) - 1
        covered = [
            s for st_ in course.stretches for s in scores
            if st_.start.wall <= s.wall and (st_.resolved is None or s.wall < st_.resolved.wall)
        ]  # fmt: skip
        assert covered == [s for s in scores if course.inside(s)]
        assert course.worst.value == (min if course.at_most else max)(s.value for s in scores)
