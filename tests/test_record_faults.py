"""The record under faults: every test counts what was produced against what was stored —
nothing lost, nothing stored twice. A full disk (injected, and a real small tmpfs), the database
file deleted or replaced, a torn or damaged spool, an old pickle spool."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event

import kapmonitor.record.spool as spool_module
from alarms.model import AlarmKind, LogEntry, LogEvent, Priority, TechnicalCondition
from alarms.profile import load_profile
from alarms.service import AlarmService
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    DeviceValue,
    Flag,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)
from kapmonitor.record.batch import Batch
from kapmonitor.record.db import open_database
from kapmonitor.record.recorder import Recorder, spool_prefix, write_orphans
from kapmonitor.record.session import SessionRecord, SessionSetup
from kapmonitor.record.spool import Spool
from kapmonitor.record.store import Store

# --- counting ---------------------------------------------------------------------------------


def _key(item) -> tuple:
    """What names one stored thing: kind, what, and when the device stamped it."""
    m = item.stamp.mono
    if isinstance(item, Numeric):
        return ("numeric", item.code.value, m)
    if isinstance(item, NibpReading):
        return ("nibp", m)
    if isinstance(item, WaveformBlock):
        return ("wave", item.code.value, m)
    if isinstance(item, DeviceValue):
        return ("value", item.key, m)
    if isinstance(item, LogEntry):  # the BP and the EtCO2 baseline share the dose's stamp
        return ("alarm", item.event.value, item.condition, item.code, m)
    return ("event", m)  # DeviceEvent, SessionEvent, EventRecord


def _stored(record: SessionRecord) -> Counter:
    things = [*record.numerics, *record.nibp, *record.waves, *record.values, *record.events,
              *record.alarms]  # fmt: skip
    return Counter(_key(x) for x in things)


def assert_nothing_lost_or_doubled(produced: list, record: SessionRecord, dropped_waves=0):
    """Zero lost, zero duplicated (a waveform block dropped by the memory bound is counted)."""
    want, got = Counter(_key(x) for x in produced), _stored(record)
    lost, doubled = want - got, got - want
    print(f"produced {sum(want.values())}, stored {sum(got.values())}, lost "
          f"{sum(lost.values())} (dropped pleth blocks {dropped_waves}), doubled "
          f"{sum(doubled.values())}")  # fmt: skip
    assert not doubled, f"{sum(doubled.values())} stored twice, e.g. {list(doubled)[:3]}"
    assert all(k[0] == "wave" for k in lost), f"lost {list(lost)[:5]}"
    assert sum(lost.values()) == dropped_waves


# --- a session through hub, alarms and recorder, with a fault in the middle -------------------


class _Run:
    def __init__(self, url: str, spool_folder: Path, *, memory_limit: int | None = None) -> None:
        self.store = Store(open_database(url))
        self.hub = Hub()
        self._seen = self.hub.subscribe("test", maxsize=10**7)
        self.service = AlarmService(self.hub, load_profile())
        self._log = self.service.out.subscribe("test", maxsize=10**6)
        self.session_id = self.store.create_session(SessionSetup("P-fault"))
        extra = {} if memory_limit is None else {"memory_limit": memory_limit}
        self.recorder = Recorder(
            self.store, self.session_id, self.hub, self.service.out, spool_folder=spool_folder,
            on_status=lambda failing, text: self.service.set_technical(
                TechnicalCondition.RECORDING_FAILING, "recorder", failing, text),
            **extra,
        )  # fmt: skip
        self.items: list = []
        self.alarms: list[LogEntry] = []

    def run(self, scenario: str, speed: float, minutes: float, during) -> None:
        playback = PlaybackSettings(speed=speed, seed=3, until=minutes * 60)
        driver = SimDriver(DeviceSpec.parse(f"sim:{scenario}"), self.hub.publish, playback=playback)
        driver.open()
        self.recorder.start()
        self.service.start()
        driver.start()
        try:
            during(self.recorder)
            driver.join(300)
        finally:
            driver.stop()
            time.sleep(0.3)
            self.service.stop()
            self.recorder.stop()
        self.items = self._seen.drain()
        self.alarms = self._log.drain()

    def failing_alarms(self) -> list[LogEntry]:
        return [a for a in self.alarms if a.condition == "recording-failing"]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


class _DiskFull:
    """ENOSPC on demand: SQLite's "database or disk is full" on every write statement (raised
    where the driver would raise it), and OSError(ENOSPC) from the spool's writes."""

    def __init__(self, monkeypatch, engine) -> None:
        self.on = False
        self.hits = 0

        def refuse(conn, cursor, statement, *args):
            if self.on and not statement.lstrip().upper().startswith("SELECT"):
                self.hits += 1
                raise sqlite3.OperationalError("database or disk is full")

        event.listen(engine, "before_cursor_execute", refuse)
        real = os
        outer = self

        class _Os:
            def __getattr__(self, name):
                return getattr(real, name)

            @staticmethod
            def write(fd, data):
                if outer.on:
                    outer.hits += 1
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real.write(fd, data)

        monkeypatch.setattr(spool_module, "os", _Os())


def test_a_full_disk_with_database_and_spool_together_loses_nothing(tmp_path, monkeypatch):
    """The default layout: both the database and the spool refuse to write for 3 s; what
    arrives meanwhile is held in memory and written when space returns."""
    run = _Run(f"sqlite:///{tmp_path / 'k.sqlite3'}", tmp_path / "spool")
    disk = _DiskFull(monkeypatch, run.store.db.engine)

    def fault(recorder):
        time.sleep(1.0)
        disk.on = True
        assert _wait(lambda: recorder.failing, 10)
        time.sleep(3.0)
        assert recorder.held > 0 and len(recorder.spool) == 0  # in memory: nothing took it
        disk.on = False
        assert _wait(lambda: not recorder.failing, 15)
        assert recorder._thread.is_alive()

    run.run("typical", speed=300, minutes=40, during=fault)
    record = run.store.load_session(run.session_id)
    run.store.db.close()
    assert disk.hits > 0
    assert_nothing_lost_or_doubled([*run.items, *run.alarms], record)
    assert run.recorder.written == len(run.items) and run.recorder.lost == 0
    assert [a.event for a in run.failing_alarms()] == [LogEvent.ACTIVE, LogEvent.INACTIVE]
    assert "database or disk is full" in run.failing_alarms()[0].text


def test_memory_full_drops_the_oldest_pleth_only_and_counts_it(tmp_path, monkeypatch):
    run = _Run(f"sqlite:///{tmp_path / 'k.sqlite3'}", tmp_path / "spool",
               memory_limit=200_000)  # fmt: skip
    disk = _DiskFull(monkeypatch, run.store.db.engine)

    def fault(recorder):
        time.sleep(0.5)
        disk.on = True
        assert _wait(lambda: recorder.dropped_waves > 0, 20)
        time.sleep(1.0)
        disk.on = False
        assert _wait(lambda: not recorder.failing, 15)

    run.run("typical", speed=300, minutes=30, during=fault)
    record = run.store.load_session(run.session_id)
    run.store.db.close()
    dropped = run.recorder.dropped_waves
    assert dropped > 0
    assert_nothing_lost_or_doubled([*run.items, *run.alarms], record, dropped_waves=dropped)
    # The oldest went first: what is missing is one stretch, from the oldest block held on.
    stored = {w.stamp.mono for w in record.waves}
    blocks = [w.stamp.mono for w in run.items if isinstance(w, WaveformBlock)]
    missing = [m for m in blocks if m not in stored]
    first = blocks.index(missing[0])
    assert blocks[first : first + len(missing)] == missing


@pytest.fixture
def small_disk(tmp_path):
    """A real 24-MB file system (tmpfs), for a disk that really fills (when filled: room for a
    40-minute session's pleth and capnogram otherwise)."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_with_database_and_spool_together_loses_nothing(small_disk):
    run = _Run(f"sqlite:///{small_disk / 'k.sqlite3'}", small_disk / "spool")
    filler = small_disk / "filler"

    def fault(recorder):
        time.sleep(1.0)
        _fill(small_disk)
        assert _wait(lambda: recorder.failing, 30)
        time.sleep(2.0)
        assert recorder.held > 0
        filler.unlink()
        assert _wait(lambda: not recorder.failing, 30)

    try:
        run.run("typical", speed=120, minutes=40, during=fault)
    finally:
        filler.unlink(missing_ok=True)
    record = run.store.load_session(run.session_id)
    run.store.db.close()
    assert_nothing_lost_or_doubled([*run.items, *run.alarms], record)
    assert [a.event for a in run.failing_alarms()] == [LogEvent.ACTIVE, LogEvent.INACTIVE]
    assert "full" in run.failing_alarms()[0].text


def _fill(folder: Path) -> Path:
    """Fill the file system ``folder`` is on to the last block; return the filler."""
    filler = folder / "filler"
    # Unbuffered: a buffered file keeps the bytes that did not fit and raises again on close.
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\xff" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_record_on_a_disk_that_fills_and_frees_keeps_every_numeric(small_disk, tmp_path):
    """The command line, database and spool on one small disk: it fills for 4 s mid-session.
    The session ends `completed` with every numeric it printed stored, once."""
    url = f"sqlite:///{small_disk / 'k.sqlite3'}"
    proc = _kapmonitor(tmp_path / "data", "record", "--device", "sim:typical", "--speed", "60",
                       "--duration", "12m", "--db", url, "--patient", "P-full",
                       "--no-waves")  # fmt: skip
    try:
        time.sleep(4)
        filler = _fill(small_disk)
        time.sleep(4)
        filler.unlink()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "recording is failing" in err, err
    store = Store(open_database(url))
    record = store.load_session(store.list_sessions()[0].id)
    store.db.close()
    assert record.info.status.value == "completed"
    assert Counter(n.code.value for n in record.numerics) == _numerics_printed(out)
    assert max(Counter(_key(n) for n in record.numerics).values()) == 1


# --- the database file deleted or replaced ----------------------------------------------------


def test_a_deleted_database_file_is_restored_at_its_path_with_everything(tmp_path):
    path = tmp_path / "k.sqlite3"
    run = _Run(f"sqlite:///{path}", tmp_path / "spool")

    def delete(recorder):
        time.sleep(1.5)
        for suffix in ("", "-wal", "-shm"):  # what `rm kapmonitor.sqlite3*` does
            Path(f"{path}{suffix}").unlink()
        assert _wait(lambda: recorder.failing, 10)
        assert path.exists()

    run.run("typical", speed=300, minutes=30, during=delete)
    assert run.store.db.path == path
    run.store.db.close()
    store = Store(open_database(f"sqlite:///{path}"))
    record = store.load_session(run.session_id)
    store.db.close()
    assert record.info.patient == "P-fault"
    assert_nothing_lost_or_doubled([*run.items, *run.alarms], record)
    failing = run.failing_alarms()
    assert failing[0].event is LogEvent.ACTIVE and "was deleted" in failing[0].text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_replaced_database_file_is_left_alone_and_the_record_goes_to_a_side_file(tmp_path):
    path = tmp_path / "k.sqlite3"
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE theirs (x)")
    theirs = other.read_bytes()
    run = _Run(f"sqlite:///{path}", tmp_path / "spool")

    def replace(recorder):
        time.sleep(1.5)
        os.replace(other, path)
        assert _wait(lambda: recorder.failing, 10)

    run.run("typical", speed=300, minutes=30, during=replace)
    side = run.store.db.path
    run.store.db.close()
    assert side != path and side.parent == path.parent and "recovered" in side.name
    assert path.read_bytes() == theirs  # not ours to overwrite
    store = Store(open_database(f"sqlite:///{side}"))
    record = store.load_session(run.session_id)
    store.db.close()
    assert_nothing_lost_or_doubled([*run.items, *run.alarms], record)
    said = run.failing_alarms()[0].text
    assert "was replaced" in said and str(side) in said


# --- the spool: torn, damaged, written twice, old format --------------------------------------


def _batches(n: int, session_id: int = 1, writer: str = "a" * 32) -> list[Batch]:
    """Batches of every kind of item, with the awkward values: None, NaN, non-ASCII text."""
    out = []
    for k in range(n):
        t = Stamp(100.0 + k, 1.7e9 + k)
        items = [
            Numeric("sim:typical", Code.SPO2, 97.0 + k, t),
            Numeric("sim:typical", Code.SPO2, None, t.shifted(0.5), frozenset({Flag.SENSOR_OFF})),
            NibpReading("sim:typical", 120.0, None, 90.0, t),
            WaveformBlock("sim:typical", Code.PLETH, t, 75.0, np.array([0.5, np.nan, -1.25])),
            DeviceValue("masimo@/dev/ttyS0", "MASIMO_SPCO", 1.5, "%", t, text="SpCO"),
            DeviceEvent("sim:typical", ConnectionState.CONNECTED, t, "ok"),
            SessionEvent("session", SessionEventKind.DOSE, t, "dose given", "nurse Ü"),
        ]
        alarms = [LogEntry(t, LogEvent.ACTIVE, "spo2-low", Priority.HIGH,
                           AlarmKind.PHYSIOLOGICAL, "sim:typical", Code.SPO2.value, 85.0, 88.0,
                           None, "SpO₂ low")]  # fmt: skip
        out.append(Batch(writer, k, session_id, items, alarms))
    return out


def _spool_bytes(tmp_path: Path, batches: list[Batch]) -> tuple[bytes, list[int]]:
    spool = Spool.create(tmp_path, "x", "w")
    ends = []
    for b in batches:
        spool.append(b)
        ends.append(len(spool))
    data = spool.path.read_bytes()
    spool.close(remove=True)
    return data, ends


def _read(path: Path, data: bytes) -> tuple[list[Batch], int]:
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    spool = Spool(path, fd)
    got = list(spool.batches())
    spool.close(remove=True)
    return got, spool.torn


def _same(a: Batch, b: Batch) -> bool:
    """Equal batches (the samples compared as arrays, NaN equal to NaN)."""
    waves = [(x, y) for x, y in zip(a.items, b.items, strict=True)
             if isinstance(x, WaveformBlock)]  # fmt: skip
    return (
        (a.writer, a.seq, a.session_id, a.alarms) == (b.writer, b.seq, b.session_id, b.alarms)
        and [i for i in a.items if not isinstance(i, WaveformBlock)]
        == [i for i in b.items if not isinstance(i, WaveformBlock)]
        and all(np.array_equal(x.samples, y.samples, equal_nan=True)
                and (x.source, x.code, x.stamp, x.fs, x.flags)
                == (y.source, y.code, y.stamp, y.fs, y.flags) for x, y in waves)
    )  # fmt: skip


def test_a_spool_cut_at_every_byte_gives_back_every_intact_batch(tmp_path):
    batches = _batches(3)
    data, ends = _spool_bytes(tmp_path, batches)
    later = _batches(1, writer="b" * 32)[0]  # what the next run appends after the tear
    tail, _ = _spool_bytes(tmp_path, [later])
    for cut in range(len(data) + 1):
        intact = [b for b, end in zip(batches, ends, strict=True) if end <= cut]
        torn = 0 if cut in (0, *ends) else 1
        got, count = _read(tmp_path / "s.kspool", data[:cut])
        assert len(got) == len(intact) and count == torn, cut
        assert all(_same(g, b) for g, b in zip(got, intact, strict=True)), cut
        got, count = _read(tmp_path / "s.kspool", data[:cut] + tail)
        assert [g.seq for g in got] == [b.seq for b in intact] + [0] and count == torn, cut
        assert got[-1].writer == "b" * 32


def test_a_damaged_batch_in_the_middle_is_skipped_alone(tmp_path):
    batches = _batches(3)
    data, ends = _spool_bytes(tmp_path, batches)
    for at in range(ends[0], ends[1], 37):  # a flipped byte anywhere in the second batch
        damaged = bytearray(data)
        damaged[at] ^= 0x5A
        got, torn = _read(tmp_path / "s.kspool", bytes(damaged))
        assert [g.seq for g in got] == [0, 2] and torn == 1, at


def test_an_old_pickle_spool_is_not_read_and_runs_no_code(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    store = Store(open_database(url))
    folder = tmp_path / "spool"
    folder.mkdir()
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps(Evil())
    legacy = folder / f"{spool_prefix(store.db.url)}.spool"
    legacy.write_bytes(len(data).to_bytes(4, "little") + data)
    assert write_orphans(store, folder) == 0
    store.db.close()
    assert not marker.exists() and legacy.exists()
    said = [r.getMessage() for r in caplog.records if "older kapmonitor" in r.getMessage()]
    assert len(said) == 1 and "pickle" in said[0]


def test_a_spool_written_out_twice_is_stored_once(tmp_path):
    """A crash between the commit and emptying the spool: the next start writes it again."""
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    store = Store(open_database(url))
    session_id = store.create_session(SessionSetup("P-twice"))
    folder = tmp_path / "spool"
    batches = _batches(3, session_id)
    spool = Spool.create(folder, spool_prefix(store.db.url), "dead")
    for b in batches:
        spool.append(b)
    spool.path.with_name("copy").write_bytes(spool.path.read_bytes())
    spool.close(remove=False)  # its recorder died: the lock is free
    assert write_orphans(store, folder) == 3
    assert not list(folder.glob("*.kspool"))
    os.replace(folder / "copy", spool.path)  # as if the spool had not been emptied
    assert write_orphans(store, folder) == 3
    record = store.load_session(session_id)
    store.db.close()
    assert_nothing_lost_or_doubled([x for b in batches for x in (*b.items, *b.alarms)], record)


def test_a_command_after_a_crash_mid_batch_keeps_the_good_batches_and_says_so_once(tmp_path):
    """The process was killed while writing its second batch; the next run appended a third.
    ``sessions list`` then works, writes batches one and three, and names the torn one once."""
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    store = Store(open_database(url))
    session_id = store.create_session(SessionSetup("P-torn"))
    prefix = spool_prefix(store.db.url)
    store.db.close()
    batches = _batches(3, session_id)
    data, ends = _spool_bytes(tmp_path, batches)
    torn = data[: ends[0]] + data[ends[0] : ends[1]][: (ends[1] - ends[0]) // 2] + data[ends[1] :]
    folder = tmp_path / "spool"  # beside the database file
    folder.mkdir()
    (folder / f"{prefix}.dead{spool_module.SUFFIX}").write_bytes(torn)
    done = subprocess.run([sys.executable, "-m", "kapmonitor", "sessions", "list", "--db", url],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[1])  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    said = [line for line in done.stderr.splitlines() if "damaged" in line]
    assert len(said) == 1 and "1 damaged batch(es)" in said[0], done.stderr
    store = Store(open_database(url))
    record = store.load_session(session_id)
    store.db.close()
    kept = [batches[0], batches[2]]
    assert_nothing_lost_or_doubled([x for b in kept for x in (*b.items, *b.alarms)], record)
    assert not list(folder.glob("*.kspool"))


def test_a_live_recorders_spool_is_not_touched_by_another_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    store = Store(open_database(url))
    session_id = store.create_session(SessionSetup("P-live"))
    folder = tmp_path / "spool"
    spool = Spool.create(folder, spool_prefix(store.db.url), "live")
    for b in _batches(2, session_id):
        spool.append(b)
    size = len(spool)
    # Another process's start: a child, so the lock is another open file description.
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from kapmonitor.record.db import open_database;"
         "from kapmonitor.record.store import Store;"
         "from kapmonitor.record.recorder import write_orphans;"
         "print(write_orphans(Store(open_database(sys.argv[1])), Path(sys.argv[2])))",
         url, str(folder)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0" and len(spool) == size and spool.path.exists()
    assert store.load_session(session_id).numerics == []
    spool.close(remove=False)
    store.db.close()


# --- two real processes on one database --------------------------------------------------------


def _kapmonitor(data: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    return subprocess.Popen([sys.executable, "-m", "kapmonitor", *args], env=env,
                            cwd=Path(__file__).parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


def _numerics_printed(stdout: str) -> Counter:
    """Per code, the numerics ``record`` printed (NIBP's parts and waveforms left aside)."""
    out: Counter = Counter()
    for line in stdout.splitlines():
        d = json.loads(line)
        numeric = {"t", "code", "value", "unit", "flags"} == set(d)  # not an alarm's line
        if numeric and "NONINV" not in d["code"]:
            out[d["code"]] += 1
    return out


def test_two_recorders_on_one_database_keep_their_own_spools(tmp_path):
    """A records while the database is locked (it spools); meanwhile B starts on the same
    database and data folder, twice, and records a session of its own. A's spool is never
    read by B; in the end each session has every numeric it printed, once."""
    path = tmp_path / "k.sqlite3"
    url = f"sqlite:///{path}"
    data = tmp_path / "data"
    a = _kapmonitor(data, "record", "--device", "sim:typical", "--speed", "60", "--duration",
                    "20m", "--db", url, "--patient", "P-A", "--no-waves")  # fmt: skip
    spools = tmp_path / "spool"  # beside the database file
    try:
        assert _wait(lambda: path.exists() and list(spools.glob("*.kspool")), 30)
        time.sleep(2)
        blocker = sqlite3.connect(path, timeout=10)
        blocker.execute("BEGIN EXCLUSIVE")  # A's commits fail after its 5-s busy timeout
        try:
            spool_a = next(spools.glob("*.kspool"))
            assert _wait(lambda: spool_a.stat().st_size > 0, 15)
            before = spool_a.stat().st_size
            listed = _kapmonitor(data, "sessions", "list", "--db", url)
            _, err = listed.communicate(timeout=60)
            assert listed.returncode == 0, err
            assert spool_a.exists() and spool_a.stat().st_size >= before  # not emptied by B
        finally:
            blocker.rollback()
            blocker.close()
        b = _kapmonitor(data, "record", "--device", "sim:typical", "--speed", "60",
                        "--duration", "5m", "--db", url, "--patient", "P-B",
                        "--no-waves")  # fmt: skip
        b_out, b_err = b.communicate(timeout=120)
        assert b.returncode == 0, b_err
        again = _kapmonitor(data, "sessions", "list", "--db", url)
        again.communicate(timeout=60)
        assert again.returncode == 0
        a_out, a_err = a.communicate(timeout=120)
        assert a.returncode == 0, a_err
    finally:
        for proc in (a,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    store = Store(open_database(url))
    by_patient = {s.patient: s.id for s in store.list_sessions()}
    for patient, printed in (("P-A", a_out), ("P-B", b_out)):
        record = store.load_session(by_patient[patient])
        stored = Counter(n.code.value for n in record.numerics)
        assert stored == _numerics_printed(printed), patient
        keys = Counter(_key(x) for x in [*record.numerics, *record.nibp, *record.events,
                                          *record.alarms])  # fmt: skip
        assert max(keys.values()) == 1, patient  # nothing stored twice
        assert record.info.status.value == "completed"
    store.db.close()
    assert not list(spools.glob("*.kspool"))  # each recorder removed its own, emptied
    assert "recording is failing" in a_err or "database is unavailable" in a_err


# --- a live recorder cut off from PostgreSQL, and a second client -----------------------------


class _Proxy:
    """A TCP proxy to PostgreSQL that can cut the line: open connections are closed and new
    ones refused (as a network that went away), until it is restored; or silence it: nothing
    is carried either way and nothing is said (a network cut that sends no reset back)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.silent = False
        self.restore()

    def silence(self) -> None:
        self.silent = True

    def restore(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.1)
        self._server = server
        self._accepting = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._accepting.start()

    def cut(self) -> None:
        self.silent = False
        server, self._server = self._server, None
        if server is not None:
            self._accepting.join()  # out of accept(): the port is free again
            server.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            while self.silent and self._server is server:
                time.sleep(0.05)  # the connection waits, unanswered
            if self._server is not server:
                client.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                if self.silent:
                    return  # swallowed: from now on this connection hears nothing
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("how", ["cut", "silence"])
def test_a_live_recorder_cut_off_from_postgres_is_not_marked_interrupted(how, postgres, tmp_path):
    """The recorder's line to PostgreSQL is cut for 35 s (longer than the 30 s that once made a
    second client mark the session interrupted). The second client, on a line of its own, finds
    the lease current; only with a lease shorter than the cut does it mark the session — saying
    how it decided — and the recorder, back, resumes it. Nothing lost, nothing doubled."""
    direct = postgres.new_database()
    proxy = _Proxy(postgres.port)
    run = _Run(direct.replace(f":{postgres.port}/", f":{proxy.port}/"), tmp_path / "spool")
    other = Store(open_database(direct))
    decided: dict[str, list[int]] = {}

    def cut(recorder):
        time.sleep(2.0)
        getattr(proxy, how)()
        assert _wait(lambda: recorder.failing, 30)  # a silent line: within its 10-s limits
        time.sleep(35.0)
        decided["lease"] = other.recover_interrupted()
        decided["short lease"] = other.recover_interrupted(lease=20.0)
        proxy.cut()  # a silenced line's connections are gone for good
        proxy.restore()
        assert _wait(lambda: not recorder.failing, 40)

    try:
        run.run("typical", speed=30, minutes=25, during=cut)
    finally:
        proxy.cut()
        run.store.db.close()
    assert decided == {"lease": [], "short lease": [run.session_id]}
    record = other.load_session(run.session_id)
    audit = [(a.action, a.detail) for a in other.audit_log(run.session_id)]
    assert record.info.status.value == "active"  # resumed: its recorder is alive
    other.db.close()
    assert_nothing_lost_or_doubled([*run.items, *run.alarms], record)
    actions = [a for a, _ in audit]
    assert actions == ["session-started", "session-interrupted", "session-resumed"]
    assert "lease expired" in audit[1][1] and "database clock" in audit[1][1]
    said = {"cut": "unavailable", "silence": "has not answered"}[how]
    assert said in run.failing_alarms()[0].text  # the nurse is told, even of a silent line
