"""The command line as a user meets it (issue 13): where a simulated session is recorded and on
which clock, identifiers, argument errors, protocol names, log lines and a wrong protocol.

Each test runs the real ``kapmonitor`` process where the output or the exit status is the point.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devices.protocols.nonin import NoninFormat2Emulator
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.cli import main
from kapmonitor.core.identifiers import MAX_LENGTH, identifier_problem, matches, one_line
from kapmonitor.core.log_lines import UserFormatter
from kapmonitor.record.db import open_database
from kapmonitor.record.recorder import spool_dir, spool_prefix
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.simulated import DEMO_FILE, is_simulated
from kapmonitor.record.store import Store
from kapmonitor.review.summary import monitoring_span
from tests.cli_process import kapmonitor
from tests.conftest import ROOT


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a user mistake gives: exit status 2, no traceback."""
    err = result.stderr
    assert result.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("kapmonitor: "), err
    return err.strip()


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


# --- 1. a simulated session is not a patient's: the demo database -----------------------------


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """A data folder of its own and a clinic database named by KAPMONITOR_DB, as a clinic sets."""
    return {"data": tmp_path / "data", "clinic": tmp_path / "clinic.sqlite3"}


def _env(folders: dict[str, Path]) -> dict[str, str]:
    return {"XDG_DATA_HOME": str(folders["data"]), "KAPMONITOR_DB": _sqlite(folders["clinic"])}


def _sessions(url: str) -> list[str]:
    store = Store(open_database(url))
    try:
        return [s.patient for s in store.list_sessions()]
    finally:
        store.db.close()


def test_a_simulated_recording_goes_to_the_demo_database_not_the_clinics(folders):
    env = _env(folders)
    recorded = kapmonitor(
        "record", "--device", "sim:typical", "--speed", "5000", "--duration", "10m",
        "--no-waves", "--patient", "SIM-1", env=env,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    demo = folders["data"] / "kapmonitor" / DEMO_FILE
    assert "the demo database" in recorded.stderr and str(demo) in recorded.stderr
    assert not folders["clinic"].exists()  # the clinic's record holds no simulated session
    assert _sessions(_sqlite(demo)) == ["SIM-1"]
    listed = kapmonitor("sessions", "list", "--demo", env=env)
    assert listed.returncode == 0 and "SIM-1" in listed.stdout, listed.stderr
    # The clinic's database is still the default: it has no session, so it does not exist.
    assert "does not exist" in _one_line(kapmonitor("sessions", "list", env=env))
    assert "two databases" in _one_line(
        kapmonitor("sessions", "list", "--demo", "--db", _sqlite(folders["clinic"]), env=env)
    )


def test_a_replay_reads_the_clinics_session_and_records_into_the_demo_database(folders):
    env = _env(folders)
    clinic = _sqlite(folders["clinic"])
    # A session in the clinic's database (named explicitly: --db is obeyed for a simulation).
    first = kapmonitor(
        "record", "--device", "sim:typical", "--speed", "5000", "--duration", "5m",
        "--no-waves", "--patient", "REAL-1", "--db", clinic, env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    replayed = kapmonitor(
        "record", "--device", "replay:1", "--speed", "5000", "--no-waves", "--patient", "REPLAY",
        env=env,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert _sessions(clinic) == ["REAL-1"]
    assert _sessions(_sqlite(folders["data"] / "kapmonitor" / DEMO_FILE)) == ["REPLAY"]


def test_only_a_session_of_simulated_devices_alone_is_simulated():
    assert is_simulated(["sim:typical"]) and is_simulated([" sim:desaturation", "replay:4"])
    assert not is_simulated(["nonin2@/dev/ttyUSB0", "sim:typical"])  # a patient is connected
    assert not is_simulated(["nonin2@COM3"]) and not is_simulated([])


# --- 2. real times for the session, the device's clock for its data -----------------------------


def test_a_fast_simulated_session_ends_at_the_real_time_and_its_data_give_the_time_monitored(
    tmp_path,
):
    url = _sqlite(tmp_path / "s.sqlite3")
    before = time.time()
    result = kapmonitor(
        "record", "--device", "sim:typical", "--speed", "600", "--duration", "60m", "--no-waves",
        "--db", url,
    )  # fmt: skip
    after = time.time()
    assert result.returncode == 0, result.stderr
    store = Store(open_database(url))
    info = store.session_info(1)
    record = store.load_session(1, waves=False)
    store.db.close()
    # The header is real: started and ended within the run, not an hour in the future.
    assert before <= info.started <= info.ended <= after
    start, end = monitoring_span(record)
    assert end - start == pytest.approx(60 * 60, abs=2)  # the data: an hour of session
    shown = kapmonitor("sessions", "show", "1", "--db", url)
    assert shown.returncode == 0, shown.stderr
    assert "monitored 60 min" in shown.stdout and "simulated" in shown.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_an_interrupted_simulated_session_is_monitored_as_long_as_its_data(tmp_path):
    """Killed after a few real seconds at --speed 120: its end is its last commit (real time),
    but it holds minutes of the simulated device's data, and the time monitored says so."""
    url = _sqlite(tmp_path / "k.sqlite3")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kapmonitor", "record", "--device", "sim:typical", "--db", url,
         "--speed", "120", "--no-waves"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "recording session" in proc.stderr.readline()  # started: now let it play a while
    time.sleep(6)
    assert proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stderr.close()
    shown = kapmonitor("sessions", "show", "1", "--db", url)  # marks it interrupted
    assert shown.returncode == 0, shown.stderr
    store = Store(open_database(url))
    info = store.session_info(1)
    record = store.load_session(1, waves=False)
    store.db.close()
    assert info.status is SessionStatus.INTERRUPTED
    data = record.numerics[-1].stamp.wall - record.numerics[0].stamp.wall
    assert data > 3 * 60  # minutes of simulated data in seconds of real time
    start, end = monitoring_span(record)
    assert end - start >= data
    assert f"monitored {(end - start) / 60:.0f} min" in shown.stdout


# --- 3. read-only commands on a mistyped path ---------------------------------------------------


def test_the_review_browser_on_a_mistyped_path_says_so_and_creates_nothing(tmp_path, capsys):
    typo = tmp_path / "typo" / "kapmonitor.sqlite3"
    opened = []
    status = main(["review", "--db", _sqlite(typo)], review=lambda *a: opened.append(a) or 0)
    err = capsys.readouterr().err
    assert status == 2 and "does not exist" in err and len(err.splitlines()) == 1
    assert opened == [] and not typo.parent.exists()


# --- 4. decoding with the wrong protocol --------------------------------------------------------


def test_bytes_of_another_protocol_are_named_as_such_with_exit_2(tmp_path):
    wire = NoninFormat2Emulator(KapSession(load_scenario("typical"), seed=1)).emit(0.0, 20.0)
    path = tmp_path / "nonin.bin"
    path.write_bytes(wire)
    result = kapmonitor("decode", "--protocol", "masimo", str(path))
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    # The Masimo parser's own diagnosis first (the line is not ASCII 1), then the verdict.
    diagnosis, line = result.stderr.splitlines()
    assert "not text lines" in diagnosis
    assert f"nothing decoded from {len(wire)} bytes" in line
    assert "do not look like masimo; is it another protocol?" in line
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(4000))
    assert "do not look like nonin2; is it another protocol?" in _one_line(
        kapmonitor("decode", "--protocol", "nonin2", str(noise))
    )
    assert kapmonitor("decode", "--protocol", "nonin2", str(path)).returncode == 0


# --- 5. identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--patient", "", "is empty"),
        ("--patient", "   ", "is empty"),
        ("--patient", "P-1\nP-2", "control character"),
        ("--patient", "P\t1", "control character"),
        ("--patient", "x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
        ("--clinician", "Dr\nK", "control character"),
    ],
)
def test_a_bad_identifier_is_refused_in_one_line_before_anything_is_recorded(
    tmp_path, option, value, why
):
    db = tmp_path / "ids.sqlite3"
    line = _one_line(
        kapmonitor("record", "--device", "sim:typical", option, value, "--db", _sqlite(db))
    )
    assert why in line and "(see kapmonitor record --help)" in line
    assert not db.exists()


def test_an_identifier_is_stored_without_surrounding_blanks(tmp_path):
    url = _sqlite(tmp_path / "s.sqlite3")
    result = kapmonitor(
        "record", "--device", "sim:typical", "--speed", "5000", "--duration", "1m", "--no-waves",
        "--patient", "  Zoë Núñez-李小龍  ", "--db", url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _sessions(url) == ["Zoë Núñez-李小龍"]


@pytest.fixture
def patients(tmp_path) -> str:
    url = _sqlite(tmp_path / "p.sqlite3")
    store = Store(open_database(url))
    # The last one was recorded before identifiers were checked (or imported from a file).
    for patient in ("Zoë Núñez-李小龍", "ZOE-0042", "Anna Zoellner", "A-1\nA-2"):
        store.create_session(SessionSetup(patient))
    store.db.close()
    return url


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("zoe", {"ZOE-0042", "Anna Zoellner"}),
        ("ZOË", {"Zoë Núñez-李小龍"}),
        ("núñez-李", {"Zoë Núñez-李小龍"}),
        ("0042", {"ZOE-0042"}),
        ("ZOE-0042", {"ZOE-0042"}),
    ],
)
def test_sessions_list_finds_any_part_of_the_patient_in_any_case_as_the_browser_does(
    patients, query, found
):
    import json

    result = kapmonitor("sessions", "list", "--json", "--patient", query, "--db", patients)
    assert result.returncode == 0, result.stderr
    assert {s["patient"] for s in json.loads(result.stdout)} == found
    from ui.review.browser import Filter  # the browser's own filter: the same rule

    every = ("Zoë Núñez-李小龍", "ZOE-0042", "Anna Zoellner", "A-1\nA-2")
    assert {p for p in every if matches(query, p)} == found
    browser = Filter(patient=query)
    store = Store(open_database(patients))
    try:
        assert {s.patient for s in store.list_sessions() if browser.accepts(s)} == found
    finally:
        store.db.close()


def test_an_old_identifier_with_a_line_break_keeps_sessions_list_one_line_a_session(patients):
    result = kapmonitor("sessions", "list", "--db", patients)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and any(line.endswith("A-1\\nA-2") for line in lines)
    assert one_line("A-1\nA-2") == "A-1\\nA-2" and one_line("Zoë") == "Zoë"


def test_the_validator_the_start_dialog_shares():
    assert identifier_problem("P-1") is None and identifier_problem(" P-1 ") is None
    assert identifier_problem("", "clinician") == "the clinician is empty: enter it"
    assert identifier_problem("a\u2028b") is not None  # a Unicode line separator breaks lines too
    assert identifier_problem("علی\u200cرضا") is None  # a zero-width non-joiner belongs to names


# --- 6. argument errors: one sentence and the subcommand's --help ------------------------------


@pytest.mark.parametrize(
    ("argv", "sub", "says"),
    [
        (["record"], "record", "required: --device"),
        (["record", "--device", "sim:typical", "--duration", "90"], "record", "'90'"),
        (["record", "--device", "sim:typical", "--bogus"], "record", "--bogus"),
        (["demo", "--speed", "0"], "demo", "'0' is not a positive number"),
        (["simulate", "--pty", "--port", "x"], "simulate", "not allowed with"),
        (["capture", "--device", "nonin2@x"], "capture", "-o/--output"),
        (["decode", "a", "b"], "decode", "unrecognized arguments: b"),
        (["sessions"], "sessions", "ACTION"),
        (["sessions", "list", "--limit", "x"], "sessions list", "invalid int value"),
        (["sessions", "show", "one"], "sessions show", "invalid int value"),
        (["export", "1", "--format", "doc", "-o", "x"], "export", "invalid choice: 'doc'"),
        (["import"], "import", "FILE"),
        (["review", "x"], "review", "invalid int value"),
        (["alarms", "replay"], "alarms replay", "--in"),
        (["alarms", "profiles", "x"], "alarms profiles", "unrecognized arguments: x"),
        (["--bogus"], "", "unrecognized arguments: --bogus"),
    ],
)
def test_an_argument_error_is_one_sentence_pointing_to_the_help(argv, sub, says):
    line = _one_line(kapmonitor(*argv))
    assert says in line
    assert line.endswith(f"(see kapmonitor {sub + ' ' if sub else ''}--help)")
    assert "usage:" not in line


# --- 7. the unknown-protocol message ------------------------------------------------------------


def test_the_unknown_protocol_message_lists_protocols_and_names_the_simulator_apart():
    line = _one_line(kapmonitor("record", "--device", "acme9000@/dev/ttyUSB0"))
    listed = line[line.index("(protocols: ") + 12 : line.index(";")].split(", ")
    assert "nonin2" in listed and "intellivue" in listed
    assert "sim" not in listed and "replay" not in listed
    assert "sim:SCENARIO" in line


# --- 8. log lines -------------------------------------------------------------------------------


def _legacy_spool(url: str) -> Path:
    database = open_database(url)
    try:
        folder, prefix = spool_dir(database.url), spool_prefix(database.url)
    finally:
        database.close()
    folder.mkdir(parents=True, exist_ok=True)
    legacy = folder / f"{prefix}.spool"
    legacy.write_bytes(b"\x80\x04old pickle")
    return legacy


def test_a_warning_is_a_sentence_without_module_paths_and_verbose_gives_them(tmp_path):
    url = _sqlite(tmp_path / "w.sqlite3")
    legacy = _legacy_spool(url)
    result = kapmonitor("sessions", "list", "--db", url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"kapmonitor: record: the spool {legacy} is from an older kapmonitor and was not read: "
        "it is pickle, which can run code; it is kept as it was\n"
    )
    for argv in (["-v", "sessions", "list"], ["sessions", "list", "--verbose"]):
        verbose = kapmonitor(*argv, "--db", url)
        assert "kapmonitor: WARNING kapmonitor.record.spool: the spool" in verbose.stderr


def test_a_device_warning_names_the_device_and_hides_an_internal_traceback():
    fmt = UserFormatter()
    record = logging.LogRecord(
        "devices.protocols.masimo", logging.WARNING, __file__, 1, "%s: %s", None, None
    )
    record.args = ("masimo@/dev/ttyUSB0", "the device sends ASCII 2")
    assert fmt.format(record) == "kapmonitor: masimo@/dev/ttyUSB0: the device sends ASCII 2"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord(
            "devices.base", logging.ERROR, __file__, 1, "reader stopped", None, sys.exc_info()
        )
    line = fmt.format(failed)
    assert line == "kapmonitor: reader stopped (run with --verbose for details)"
