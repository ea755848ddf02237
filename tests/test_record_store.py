"""The session record: every item stored and read back, on SQLite and on a real PostgreSQL;
crash safety; a database that goes away in the middle of a recording."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from alarms.model import LogEvent, TechnicalCondition
from alarms.profile import load_profile
from alarms.service import AlarmService
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.cli import main
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import DeviceEvent, NibpReading, Numeric, SessionEvent, WaveformBlock
from kapmonitor.record.db import open_database
from kapmonitor.record.recorder import Recorder
from kapmonitor.record.session import Drug, Route, SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from tests.conftest import ROOT
from tests.pipeline_helpers import Collector


def _record(url: str, tmp_path, scenario: str = "probe-off", minutes: float = 40, speed=1e5):
    """Run a simulated session through hub, alarms and recorder; return what was published."""
    store = Store(open_database(url))
    hub = Hub()
    seen = Collector(hub.subscribe("test", maxsize=10**6))
    service = AlarmService(hub, load_profile())
    log = Collector(service.out.subscribe("test", maxsize=10**6))
    session_id = store.create_session(
        SessionSetup("P-42", "Dr K", "nurse A", Drug.ESKETAMINE, Route.INTRANASAL, 84, "mg")
    )
    recorder = Recorder(store, session_id, hub, service.out, spool_folder=tmp_path / "spool")
    playback = PlaybackSettings(speed=speed, seed=5, until=minutes * 60)
    driver = SimDriver(DeviceSpec.parse(f"sim:{scenario}"), hub.publish, playback=playback)
    driver.open()
    recorder.start()
    service.start()
    driver.start()
    driver.join(120)
    time.sleep(0.3)
    service.stop()
    recorder.stop()
    store.end_session(session_id, SessionStatus.COMPLETED)
    seen.collect_rest()
    log.collect_rest()
    return store, session_id, seen.items, log.items, recorder


def test_every_item_of_a_session_is_stored_and_read_back(db_url, tmp_path):
    store, session_id, items, log, recorder = _record(db_url, tmp_path)
    record = store.load_session(session_id)
    # What review reads, on both databases: the lean list, the pleth for a span, the amendment
    # with its reason in the audit trail, the profile the session ran with.
    assert [s.id for s in store.list_sessions(patient="P-42")] == [session_id]
    assert store.list_sessions()[0] == record.info
    t0 = record.waves[10].stamp.wall
    span = store.load_waves(session_id, t0, t0 + 5.0)
    assert [w.stamp for w in span] == [w.stamp for w in record.waves if t0 <= w.stamp.wall < t0 + 5]
    dose = next(e for e in record.events if e.kind == "dose")
    store.add_event(session_id, "dose", "dose given, 84 mg", "Dr K", stamp=dose.stamp,
                    amends=dose.id, reason="dose text incomplete")  # fmt: skip
    audit = store.audit_log(session_id)
    assert audit[-1].who == "Dr K" and audit[-1].action == "amended"
    assert "reason: dose text incomplete" in audit[-1].detail
    doses = [e for e in store.load_session(session_id, waves=False).events if e.kind == "dose"]
    assert [(e.text, e.amends) for e in doses] == [(dose.text, None),  # the original is kept
                                                   ("dose given, 84 mg", dose.id)]  # fmt: skip
    store.db.close()
    assert record.info.patient == "P-42" and record.info.status is SessionStatus.COMPLETED
    assert record.info.drug is Drug.ESKETAMINE and record.info.dose == 84
    assert [d.source for d in record.devices] == ["sim:probe-off"]

    numerics = [i for i in items if isinstance(i, Numeric)]
    assert record.numerics == sorted(numerics, key=lambda i: i.stamp.wall)
    assert any(n.value is None for n in record.numerics)  # missing stays missing, not 0
    assert record.nibp == [i for i in items if isinstance(i, NibpReading)]
    waves = [i for i in items if isinstance(i, WaveformBlock)]
    assert len(record.waves) == len(waves)
    for got, sent in zip(record.waves, waves, strict=True):
        assert got.stamp == sent.stamp and got.fs == sent.fs and got.flags == sent.flags
        # float32 storage; NaN (no signal) stays NaN
        np.testing.assert_allclose(got.samples, sent.samples, rtol=1e-6, equal_nan=True)
    kinds = [e.kind for e in record.events]
    assert kinds.count("dose") == 1 and "device-state" in kinds
    assert len([i for i in items if isinstance(i, DeviceEvent | SessionEvent)]) == len(kinds)
    assert [(a.event, a.condition, a.stamp) for a in record.alarms] == [
        (a.event, a.condition, a.stamp) for a in log
    ]
    assert any(a.event is LogEvent.ACTIVE and a.condition == "sensor-off" for a in record.alarms)
    assert recorder.written == len(items)
    assert not recorder.failing and len(recorder.spool) == 0


def test_a_new_database_file_is_private_and_in_wal_mode(tmp_path):
    path = tmp_path / "private" / "kap.sqlite3"
    open_database(f"sqlite:///{path}").close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "numerics", "nibp", "waves", "events", "alarm_log", "audit_log",
            "alembic_version"} <= tables  # fmt: skip


def test_a_database_url_that_cannot_work_is_one_plain_line(capsys, tmp_path):
    for url, words in (
        ("nonsense", "is not a database URL"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open the database"),
    ):
        assert main(["sessions", "list", "--db", url]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


def test_sessions_list_json_and_show(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    store, session_id, *_ = _record(url, tmp_path, "typical", minutes=45)
    store.db.close()
    assert main(["sessions", "list", "--json", "--db", url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == session_id
    assert {"id", "patient", "start", "end", "status"} <= set(listed[0])
    assert listed[0]["patient"] == "P-42" and listed[0]["status"] == "completed"
    assert main(["sessions", "show", str(session_id), "--db", url]) == 0
    shown = capsys.readouterr().out
    assert "patient P-42" in shown and "NIBP" in shown and "min:" in shown
    assert main(["sessions", "show", "999", "--db", url]) == 2
    assert "there is no session 999" in capsys.readouterr().err


def test_a_killed_recorder_loses_at_most_a_second_and_the_session_is_interrupted(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kapmonitor", "record", "--device", "sim:typical", "--db", url,
         "--patient", "P-crash", "--no-waves"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(6)
    assert proc.poll() is None, proc.stderr.read()
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stderr.close()

    store = Store(open_database(url))
    assert store.list_sessions()[0].status is SessionStatus.ACTIVE  # nobody has looked yet
    assert store.recover_interrupted() == [1]
    info = store.session_info(1)
    assert info.status is SessionStatus.INTERRUPTED and info.ended is not None
    record = store.load_session(1)
    store.db.close()
    # What is stored reaches up to the end of the last pleth block (blocks of 0.25 s; numerics
    # come once a second, so they alone would show up to a second less than was kept).
    last = max(w.stamp.wall + w.duration for w in record.waves)
    assert killed_at - last <= 1.0, f"lost {killed_at - last:.2f} s"
    # The database is consistent: every row belongs to the session and reads back.
    with sqlite3.connect(tmp_path / "k.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # And the command line reports it on the next start.
    result = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "sessions", "list", "--db", url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "interrupted" in result.stdout


def test_postgres_stopped_and_restarted_mid_recording_loses_nothing(postgres, tmp_path):
    url = postgres.new_database()
    store = Store(open_database(url))
    hub = Hub()
    seen = Collector(hub.subscribe("test", maxsize=10**6))
    service = AlarmService(hub, load_profile())
    alarms = Collector(service.out.subscribe("test", maxsize=10**6))
    session_id = store.create_session(SessionSetup("P-pg"))
    recorder = Recorder(
        store, session_id, hub, service.out, spool_folder=tmp_path / "spool",
        on_status=lambda failing, text: service.set_technical(
            TechnicalCondition.RECORDING_FAILING, "recorder", failing, text),
    )  # fmt: skip
    playback = PlaybackSettings(speed=100, seed=2)
    driver = SimDriver(DeviceSpec.parse("sim:typical"), hub.publish, playback=playback)
    driver.open()
    recorder.start()
    service.start()
    driver.start()
    try:
        time.sleep(2)
        postgres.stop("fast")
        deadline = time.monotonic() + 20
        while not recorder.failing and time.monotonic() < deadline:
            time.sleep(0.1)
        assert recorder.failing
        time.sleep(2)
        assert len(recorder.spool) > 0
        postgres.start()
        deadline = time.monotonic() + 30
        while recorder.failing and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not recorder.failing
        time.sleep(1)
    finally:
        driver.stop()
        time.sleep(0.3)
        service.stop()
        recorder.stop()
    seen.collect_rest()
    alarms.collect_rest()
    record = store.load_session(session_id)
    store.db.close()
    stored = len(record.numerics) + len(record.nibp) + len(record.waves) + len(record.events)
    assert stored == len(seen.items) > 0
    assert len(recorder.spool) == 0
    failing = [a for a in alarms.items if a.condition == "recording-failing"]
    assert [a.event for a in failing] == [LogEvent.ACTIVE, LogEvent.INACTIVE]
    assert [a.event for a in record.alarms if a.condition == "recording-failing"] == [
        LogEvent.ACTIVE, LogEvent.INACTIVE]  # fmt: skip


# vitaldb leaves its file open (its own code): that is not ours to fail on.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_recorded_session_exports_from_the_database_in_every_format(tmp_path, capsys):
    """Recorded at high speed through the recorder, read from the database, exported by the
    command line, and read back by independent readers with the values equal."""
    import csv
    import warnings

    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    assert main(["record", "--device", "sim:probe-off", "--speed", "20000", "--duration", "2h",
                 "--db", url, "--patient", "P-export", "--no-waves"]) == 0  # fmt: skip
    capsys.readouterr()
    store = Store(open_database(url))
    record = store.load_session(1)
    store.db.close()
    spo2 = [n.value for n in record.numerics if n.code.value == "MDC_PULS_OXIM_SAT_O2"]
    assert len(spo2) == 7200 and None in spo2

    paths = {fmt: tmp_path / f"s.{fmt}" for fmt in ("csv", "fhir", "hl7", "vital")}
    for fmt, path in paths.items():
        assert main(["export", "1", "--format", fmt, "-o", str(path), "--db", url,
                     "--deidentify"]) == 0  # fmt: skip
        assert b"P-export" not in path.read_bytes()
    with open(paths["csv"], encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if r["kind"] == "measurement" and r["code"] == "MDC_PULS_OXIM_SAT_O2"]  # fmt: skip
    assert [float(r["value"]) if r["value"] else None for r in rows] == spo2
    fhir = json.loads(paths["fhir"].read_text())
    observations = [e for e in fhir["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) >= len(record.numerics)
    hl7_values = [
        line.split("|")[5]
        for line in paths["hl7"].read_text().replace("\n", "\r").split("\r")
        if line.startswith("OBX|") and "MDC_PULS_OXIM_SAT_O2" in line
    ]
    assert [float(v) if v else None for v in hl7_values] == spo2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vitaldb imports wfdb, which warns about pandas
        import vitaldb
    vf = vitaldb.VitalFile(str(paths["vital"]))
    track = next(name for name in vf.get_track_names() if name.endswith("SpO2"))
    got = vf.to_numpy([track], 1.0)[:, 0]
    values = got[~np.isnan(got)]
    assert np.allclose(values, [v for v in spo2 if v is not None])
