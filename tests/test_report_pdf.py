"""The PDF session report, read back with pypdf (a reader kapmonitor shares no code with).

The values expected in the text are worked out here from the record itself (the highest
systolic reading, the reading closest to 40 minutes, the alarms per priority), not taken from
the summary the report prints, so a wrong summary fails the test.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from alarms.model import LogEvent, Priority
from alarms.profile import load_profile
from kapmonitor.cli import main
from kapmonitor.export import export_session, pdf_fonts
from kapmonitor.export import pdf as pdf_export
from kapmonitor.record.db import open_database
from kapmonitor.record.session import EventRecord, SessionRecord, SessionStatus
from kapmonitor.record.store import Store
from kapmonitor.review.rems import ASSESSMENT_KIND
from kapmonitor.review.summary import clock, minutes_text
from tests.session_fixtures import CLINICIAN, OPERATOR, PATIENT, SESSION_UID, build_session

SCREENSHOTS = os.environ.get("KAPMONITOR_SCREENSHOTS")


def text_of(path: Path) -> str:
    """All pages' text with whitespace runs made single spaces (table cells wrap lines)."""
    reader = PdfReader(path)
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def with_events(record: SessionRecord, *extra: EventRecord) -> SessionRecord:
    events = sorted([*record.events, *extra], key=lambda e: e.stamp.wall)
    return dataclasses.replace(record, events=events)


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> SessionRecord:
    rec = build_session(tmp_path_factory.mktemp("session"))
    dose = rec.dose_stamp
    assert dose is not None and rec.alarms
    return with_events(
        rec,
        EventRecord(100, dose.shifted(2700), "note", "recheck BP 105/150", None, OPERATOR),
        EventRecord(101, dose.shifted(2760), "note", "recheck BP 150/105", None, OPERATOR, 100),
        EventRecord(102, dose.shifted(5400), ASSESSMENT_KIND, "sedation: yes", None, CLINICIAN),
    )


@pytest.fixture(scope="module")
def report(record: SessionRecord, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("pdf") / "session.pdf"
    export_session(record, "pdf", path)
    return text_of(path)


def test_the_header_names_the_patient_the_drug_and_the_session(report: str):
    for expected in (PATIENT, CLINICIAN, OPERATOR, "ketamine, iv, 35 mg", SESSION_UID,
                     "completed", "KAP session report"):  # fmt: skip
        assert expected in report
    assert f"kapmonitor {metadata.version('kapmonitor')}" in report
    # Every page numbered "of" the same total (3 since the breathing trends and figures).
    totals = {int(n) for n in re.findall(r"page \d+ of (\d+)", report)}
    assert len(totals) == 1 and all(f"page {i} of {max(totals)}" in report
                                    for i in range(1, max(totals) + 1))  # fmt: skip


def test_the_summary_shows_the_peak_bp_as_recorded(record: SessionRecord, report: str):
    readings = [r for r in record.nibp if r.systolic is not None]
    peak = max(readings, key=lambda r: r.systolic)
    minutes = (peak.stamp.wall - record.dose_stamp.wall) / 60
    expected = (
        f"Peak systolic {peak.systolic:.0f}/{peak.diastolic:.0f} mmHg at "
        f"{clock(peak.stamp.wall)} ({minutes_text(minutes)})"
    )
    assert expected in report


def test_the_rems_box_has_the_bp_at_40_minutes(record: SessionRecord, report: str):
    dose = record.dose_stamp.wall
    readings = [r for r in record.nibp if r.systolic is not None and r.stamp.wall >= dose]
    near = min(readings, key=lambda r: abs((r.stamp.wall - dose) / 60 - 40))
    assert abs((near.stamp.wall - dose) / 60 - 40) <= 15
    expected = (
        f"BP at 40 min after administration {near.systolic:.0f}/{near.diastolic:.0f} mmHg "
        f"at {clock(near.stamp.wall)}"
    )
    assert "REMS Patient Monitoring Form" in report
    assert expected in report
    assert f"Sedation Yes (assessment at {clock(record.dose_stamp.wall + 5400)}" in report


def test_the_alarm_counts_match_the_alarm_log(record: SessionRecord, report: str):
    for priority in (Priority.HIGH, Priority.MEDIUM, Priority.LOW):
        n = sum(1 for a in record.alarms if a.event is LogEvent.ACTIVE and a.priority is priority)
        assert n  # the fixture has alarms of every priority
        assert f"Alarms, {priority.label} {n} (" in report
    acknowledged = next(a for a in record.alarms if a.event is LogEvent.ACKNOWLEDGED)
    assert f"{time.strftime('%H:%M:%S', time.localtime(acknowledged.stamp.wall))} by" in report


def test_events_are_listed_and_an_amended_one_shows_its_correction(report: str):
    assert "patient talking" in report and "feels calm, BP settling" in report
    assert "recheck BP 105/150" in report  # the original is kept, struck through
    assert "corrected by #" in report and ": recheck BP 150/105" in report
    assert "[corrects #" in report


def test_deidentify_hides_the_patient_and_the_names(record: SessionRecord, tmp_path: Path):
    path = tmp_path / "anon.pdf"
    export_session(record, "pdf", path, deidentify=True)
    text = text_of(path)
    assert PATIENT not in text and CLINICIAN not in text and OPERATOR not in text
    assert re.search(r"anon-[0-9a-f]{8} \(de-identified\)", text)
    assert SESSION_UID not in text and SESSION_UID[:8] not in text
    meta = PdfReader(path).metadata
    assert PATIENT not in " ".join(str(v) for v in meta.values())
    assert PATIENT.encode() not in path.read_bytes()


def test_an_empty_session_still_gives_a_valid_report(record: SessionRecord, tmp_path: Path):
    info = dataclasses.replace(record.info, ended=None, status=SessionStatus.INTERRUPTED)
    empty = SessionRecord(info)
    path = tmp_path / "empty.pdf"
    export_session(empty, "pdf", path)
    text = text_of(path)
    assert len(PdfReader(path).pages) >= 1
    assert "INTERRUPTED" in text
    assert "no values recorded" in text and "no NIBP reading" in text
    assert "No events were recorded" in text and "No alarm condition became active" in text
    assert "Monitored not recorded: no device data" in text


def test_names_and_notes_in_any_european_script_print_as_typed(
    record: SessionRecord, tmp_path: Path
):
    if not pdf_export.register_fonts().startswith("DejaVu"):
        pytest.skip("DejaVu Sans is not installed (fonts-dejavu-core): the report uses Helvetica")
    info = dataclasses.replace(record.info, patient="Zoë Łukasiewicz-Παπαδοπούλου",
                               clinician="Д-р Ольга Смирнова")  # fmt: skip
    note = EventRecord(990, record.events[-1].stamp, "note", "пациент спокоен, ćwiczenia oddechowe")
    path = tmp_path / "scripts.pdf"
    export_session(dataclasses.replace(with_events(record, note), info=info), "pdf", path)
    text = text_of(path)
    for typed in ("Zoë Łukasiewicz-Παπαδοπούλου", "Д-р Ольга Смирнова", "ćwiczenia oddechowe",
                  "пациент спокоен"):  # fmt: skip
        assert typed in text


def test_a_session_without_dose_or_nibp(record: SessionRecord, tmp_path: Path):
    bare = dataclasses.replace(
        record, nibp=[], events=[e for e in record.events if e.kind != "dose"], alarms=[]
    )
    path = tmp_path / "bare.pdf"
    export_session(bare, "pdf", path)
    text = text_of(path)
    assert "no dose marked" in text and "minutes from the start" in text
    assert "Peak systolic not recorded: no NIBP reading" in text
    assert "BP before administration not recorded: no dose marked" in text


def test_a_two_hour_session_is_written_fast_and_small(record: SessionRecord, tmp_path: Path):
    path = tmp_path / "timed.pdf"
    export_session(record, "pdf", path)  # imports done
    started = time.perf_counter()
    export_session(record, "pdf", path)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert path.stat().st_size < 300_000


def test_decimation_keeps_a_min_max_pair_per_pixel_column_and_gaps_as_gaps():
    axis = pdf_export._Axis(origin=0.0, lo=0.0, hi=120.0, left=0.0, right=400.0)
    minutes = np.arange(7200) / 60.0
    values = 95 + np.sin(np.arange(7200))
    values[3600:3630] = np.nan  # 30 s missing
    values[100] = 70  # a dip: must survive decimation
    parts = pdf_export._decimated(minutes, values, axis, gap_min=10 / 60)
    assert len(parts) == 2  # one gap
    points = np.concatenate(parts)
    assert points.size <= 4 * 402
    assert points[1::2].min() == 70
    # A time gap longer than the limit splits too, without any NaN.
    keep = np.r_[0:1000, 1020:7200]
    assert len(pdf_export._decimated(minutes[keep], np.full(keep.size, 95.0), axis, 10 / 60)) == 2


# --- through the command line and the database ------------------------------------------------


def test_cli_exports_a_recorded_session_as_pdf(tmp_path: Path, capsys: pytest.CaptureFixture):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    assert main(["record", "--device", "sim:typical", "--speed", "20000", "--duration", "2h",
                 "--db", url, "--patient", "P-pdf-1", "--no-waves"]) == 0  # fmt: skip
    capsys.readouterr()
    store = Store(open_database(url))
    stored = store.load_session(1)
    store.db.close()
    assert stored.profile_text == load_profile("kap-default").text  # as recorded
    path = tmp_path / "report.pdf"
    started = time.perf_counter()
    assert main(["export", "1", "--format", "pdf", "-o", str(path), "--db", url]) == 0
    elapsed = time.perf_counter() - started
    assert "exported as pdf" in capsys.readouterr().err
    text = text_of(path)
    assert "P-pdf-1" in text and "Alarm profile kap-default (as recorded with the session)" in text
    peak = max((r for r in stored.nibp if r.systolic is not None), key=lambda r: r.systolic)
    assert f"Peak systolic {peak.systolic:.0f}/{peak.diastolic:.0f} mmHg" in text
    assert elapsed < 10.0, f"{elapsed:.2f} s"  # the database load included; printed in -s runs
    print(f"CLI export of a 2-hour session as PDF: {elapsed:.2f} s, {path.stat().st_size} B")

    anon = tmp_path / "anon.pdf"
    assert main(["export", "1", "--format", "pdf", "-o", str(anon), "--db", url,
                 "--deidentify"]) == 0  # fmt: skip
    assert "P-pdf-1" not in text_of(anon)

    capsys.readouterr()
    bad = tmp_path / "no-such-folder" / "report.pdf"
    assert main(["export", "1", "--format", "pdf", "-o", str(bad), "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kapmonitor: the export cannot be written")
    assert not bad.exists()


def test_a_name_in_chinese_korean_or_japanese_prints_as_typed(
    record: SessionRecord, tmp_path: Path
):
    if pdf_fonts.fallback_font_for("李") is None:
        pytest.skip("no TrueType CJK font is installed (Debian: fonts-wqy-zenhei, as CI has)")
    patient = "Zoë Núñez-李小龍"
    info = dataclasses.replace(record.info, patient=patient, clinician="김민준 선생님")
    note = EventRecord(991, record.events[-1].stamp, "note", "患者は落ち着いている <ok>")
    path = tmp_path / "cjk.pdf"
    export_session(dataclasses.replace(with_events(record, note), info=info), "pdf", path)
    text = text_of(path)
    for typed in (patient, "김민준 선생님", "患者は落ち着いている <ok>"):
        assert typed in text
    fonts = {
        str(font["/BaseFont"])
        for page in PdfReader(path).pages
        for font in page["/Resources"]["/Font"].values()
    }
    fallback = pdf_fonts.fallback_font_for("李")
    assert any(pdf_fonts.base_font(fallback) in name for name in fonts), fonts  # embedded
    if SCREENSHOTS:  # the header as printed, for the eye (pdftoppm, poppler-utils)
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        out = Path(SCREENSHOTS) / "report-cjk-name"
        page_one = ["-f", "1", "-l", "1", "-singlefile"]
        command = ["pdftoppm", "-png", "-r", "110", *page_one, str(path), str(out)]
        subprocess.run(command, check=True)


def test_text_is_cut_into_runs_by_the_font_that_has_each_character():
    if not pdf_export.register_fonts().startswith("DejaVu"):
        pytest.skip("DejaVu Sans is not installed (fonts-dejavu-core): the report uses Helvetica")
    assert pdf_fonts.runs("Zoë Núñez") == [(None, "Zoë Núñez")]
    assert pdf_fonts.markup("a < b & c") == "a &lt; b &amp; c"
    cjk = pdf_fonts.fallback_font_for("李")
    if cjk is None:
        pytest.skip("no TrueType CJK font is installed (Debian: fonts-wqy-zenhei, as CI has)")
    assert pdf_fonts.runs("Zoë Núñez-李小龍 (A)") == [
        (None, "Zoë Núñez-"), (cjk, "李小龍"), (None, " (A)"),
    ]  # fmt: skip
    assert pdf_fonts.markup("<李>") == f'&lt;<font face="{cjk}">李</font>&gt;'
    assert pdf_fonts.fallback_font_for("\U000f0000") is None  # private use: nobody has it
