"""The record in compact blocks: every value, time, flag, gap and NaN comes back bit for bit, in
the same order, on SQLite and on a real PostgreSQL; batch names still stop a replay; a database
recorded before the blocks (revision 0003) is converted by its migration and reads the same."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sqlalchemy import create_engine, event, func, select, text

from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Flag, NibpReading, Numeric, Stamp, WaveformBlock
from kapmonitor.record import compaction
from kapmonitor.record import recorder as recorder_module
from kapmonitor.record.db import HEAD_REVISION, migrate, open_database
from kapmonitor.record.packing import pack, unpack
from kapmonitor.record.recorder import Recorder
from kapmonitor.record.schema import (
    BatchRow,
    BatchRunRow,
    NumericBlockRow,
    NumericRow,
    WaveBlockRow,
    WaveRow,
)
from kapmonitor.record.session import SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from tests.pipeline_helpers import Collector

T0 = 1_780_000_000.123  #: a wall clock with a fraction, as a real one has
M0 = 5_000.75


def _items(seconds: int = 150) -> list:
    """Two devices' numerics and waves with everything the record must keep: missing values,
    flags, NaN runs, a time break between blocks, whole-number counts and float samples,
    several codes at one time."""
    oximeter, capno = "nonin2@/dev/ttyUSB0", "capnostream@/dev/ttyUSB1"
    rng = np.random.default_rng(7)
    items: list = []
    for k in range(seconds):
        at = Stamp(M0 + k, T0 + k)
        off = 40 <= k < 47  # the probe off: no value, flagged
        flags = frozenset({Flag.SENSOR_OFF}) if off else frozenset()
        items.append(Numeric(oximeter, Code.SPO2, None if off else 90.0 + k % 9, at, flags))
        items.append(Numeric(oximeter, Code.PULSE_RATE, None if off else 71.0, at, flags))
        pi_flags = frozenset({Flag.LOW_PERFUSION, Flag.QUESTIONABLE}) if k % 13 == 0 else flags
        items.append(Numeric(oximeter, Code.PERFUSION, 0.1 * k + 0.01, at, pi_flags))
        items.append(Numeric(capno, Code.CO2_ET, 38.5 + rng.normal(), at.shifted(0.37)))
        if 100 <= k < 103:
            continue  # the pleth cable out for 3 s: a time break, kept as one
        for q in range(3):  # Nonin: 75 Hz in frames of 25 whole-number counts
            counts = rng.integers(-300, 3000, 25).astype(float)
            if off:
                counts[:] = np.nan
            items.append(WaveformBlock(oximeter, Code.PLETH, at.shifted(q / 3), 75.0, counts,
                                       flags))  # fmt: skip
        items.append(WaveformBlock(capno, Code.CO2, at.shifted(0.37), 20.0,
                                   rng.normal(20, 9, 20).round(3)))  # fmt: skip
    items.append(NibpReading(oximeter, 121.0, 79.0, None, Stamp(M0 + 30, T0 + 30)))
    return items


def _key(items) -> list:
    """What identifies an item bit for bit (NaN as its bits, -0.0 apart from 0.0)."""
    out = []
    for i in items:
        samples = i.samples.astype("<f4").tobytes() if isinstance(i, WaveformBlock) else None
        value = getattr(i, "value", None)
        out.append((type(i).__name__, i.source, getattr(i, "code", None), i.stamp.mono,
                    i.stamp.wall, None if value is None else np.float64(value).tobytes(),
                    i.flags, getattr(i, "fs", None), samples))  # fmt: skip
    return out


def _count(store: Store, table) -> int:
    with store.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _write(store: Store, items: list, writer: str = "w" * 32, per: int = 40) -> int:
    session_id = store.create_session(SessionSetup("P-7"))
    for seq, i in enumerate(range(0, len(items), per)):
        assert store.write(session_id, items[i : i + per], batch=(writer, seq))
    return session_id


def test_blocks_read_back_bit_for_bit_in_the_same_order(db_url):
    store = Store(open_database(db_url))
    session_id = _write(store, _items())
    rows = store.load_session(session_id)
    assert _count(store, NumericBlockRow) == 0  # nothing compacted yet: rows alone
    t_lo, t_hi = T0 + 35.2, T0 + 104.0
    span = _key(store.load_waves(session_id, t_lo, t_hi))

    moved = store.compact(session_id)
    assert moved > 0
    assert _count(store, NumericRow) == _count(store, WaveRow) == _count(store, BatchRow) == 0
    blocks = store.load_session(session_id)
    assert _key(blocks.numerics) == _key(rows.numerics)
    assert _key(blocks.waves) == _key(rows.waves)
    assert blocks.nibp == rows.nibp
    assert _key(store.load_waves(session_id, t_lo, t_hi)) == span
    assert [w.stamp.wall for w in store.load_waves(session_id, t_lo, t_hi)] == [
        w.stamp.wall for w in rows.waves if t_lo <= w.stamp.wall < t_hi
    ]
    # what the record must keep, checked on its own
    spo2 = [n for n in blocks.numerics if n.code is Code.SPO2]
    assert [n.value for n in spo2[40:47]] == [None] * 7
    assert all(n.flags == {Flag.SENSOR_OFF} for n in spo2[40:47])
    pleth = [w for w in blocks.waves if w.code is Code.PLETH]
    assert np.isnan(pleth[40 * 3].samples).all() and not np.isnan(pleth[0].samples).any()
    walls = np.array([w.stamp.wall for w in pleth])
    assert np.diff(walls).max() == pytest.approx(3 + 1 / 3)  # the 3-s break stays a break
    assert len({w.stamp.wall for w in pleth}) == len(pleth)

    # rows written after the compaction (a spool written late) join the blocks in order
    late = [Numeric("nonin2@/dev/ttyUSB0", Code.SPO2, 97.0, Stamp(M0 + 10.5, T0 + 10.5))]
    store.write(session_id, late)
    again = store.load_session(session_id).numerics
    assert _key(again) == _key(sorted([*rows.numerics, *late], key=lambda n: n.stamp.wall))
    store.compact(session_id)
    assert _key(store.load_session(session_id).numerics) == _key(again)
    store.db.close()


def test_a_named_batch_is_stored_once_after_its_name_went_into_a_run(db_url):
    store = Store(open_database(db_url))
    items = _items(20)
    session_id = _write(store, items, writer="a" * 32)
    store.write(session_id, [], batch=("b" * 32, 7))  # another writer's batch, alone
    batches = _count(store, BatchRow) - 1  # writer a's: 0 to batches - 1
    store.end_session(session_id, SessionStatus.COMPLETED)  # compacts
    assert _count(store, BatchRow) == 0 and _count(store, BatchRunRow) == 2
    before = store.load_session(session_id)
    for seq in (0, batches // 2, batches - 1):
        assert store.write(session_id, items[:40], batch=("a" * 32, seq)) is False
    assert store.write(session_id, items[:1], batch=("b" * 32, 7)) is False
    assert _key(store.load_session(session_id).numerics) == _key(before.numerics)
    assert store.write(session_id, [], batch=("a" * 32, batches))  # the next one is new
    store.compact(session_id)
    with store.db.engine.connect() as conn:
        query = select(BatchRunRow.writer, BatchRunRow.first_seq, BatchRunRow.last_seq)
        runs = conn.execute(query.order_by(BatchRunRow.writer)).all()
    assert [tuple(r) for r in runs] == [("a" * 32, 0, batches), ("b" * 32, 7, 7)]  # one run
    store.db.close()


def _config() -> Config:
    from importlib import resources

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("kapmonitor.record") / "migrations"))
    return cfg


def test_a_database_recorded_at_revision_0003_is_converted_and_reads_the_same(db_url, tmp_path):
    """Recorded by the store as it was (rows only, at revision 0003), then opened by this one."""
    engine = create_engine(db_url)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    items = _items(90)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sessions (id, uid, patient, clinician, operator, "
                          "dose_unit, started, status, alarm_profile, alarm_profile_text, owner)"
                          " VALUES (1, 'u-1', 'P-old', '', '', '', :t, 'completed', '', '', '')"),
                     {"t": T0})  # fmt: skip
        devices = {}
        for i in items:
            if i.source not in devices:
                devices[i.source] = len(devices) + 1
                conn.execute(text("INSERT INTO devices (id, session_id, source, protocol, port) "
                                  "VALUES (:i, 1, :s, '', '')"),
                             {"i": devices[i.source], "s": i.source})  # fmt: skip
        for i in items:
            base = {"d": devices[i.source], "m": i.stamp.mono, "w": i.stamp.wall,
                    "f": ";".join(sorted(f.value for f in i.flags))}  # fmt: skip
            if isinstance(i, Numeric):
                conn.execute(text("INSERT INTO numerics (session_id, device_id, code, value, "
                                  "flags, t_wall, t_mono) VALUES (1, :d, :c, :v, :f, :w, :m)"),
                             {**base, "c": i.code.value, "v": i.value})  # fmt: skip
            elif isinstance(i, WaveformBlock):
                data = zlib.compress(i.samples.astype("<f4").tobytes(), 6)
                conn.execute(text("INSERT INTO waves (session_id, device_id, code, fs, n, data, "
                                  "flags, t_wall, t_mono) VALUES (1, :d, :c, :fs, :n, :data, :f, "
                                  ":w, :m)"),
                             {**base, "c": i.code.value, "fs": i.fs, "n": len(i.samples),
                              "data": data})  # fmt: skip
        for seq in range(30):
            conn.execute(text("INSERT INTO record_batches (session_id, writer, seq) "
                              "VALUES (1, 'old-writer', :q)"), {"q": seq})  # fmt: skip
    engine.dispose()

    # The same items written by this store and read as rows, without compaction: the reference.
    reference = Store(open_database(f"sqlite:///{tmp_path / 'reference.sqlite3'}"))
    ref_id = reference.create_session(SessionSetup("P-old"))
    reference.write(ref_id, items)
    expected = reference.load_session(ref_id)
    reference.db.close()

    store = Store(open_database(db_url))  # migrates to the newest revision
    assert _count(store, NumericRow) == _count(store, WaveRow) == _count(store, BatchRow) == 0
    assert _count(store, NumericBlockRow) > 0 and _count(store, WaveBlockRow) > 0
    got = store.load_session(1)
    assert _key(got.numerics) == _key(expected.numerics)
    assert _key(got.waves) == _key(expected.waves)
    assert store.write(1, items[:3], batch=("old-writer", 12)) is False  # still recognised
    store.db.close()

    # and back: the downgrade puts the blocks back into rows that revision 0003 reads
    engine = create_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM numerics")).scalar_one() == len(
            expected.numerics
        )
        assert conn.execute(text("SELECT count(*) FROM record_batches")).scalar_one() == 30
    engine.dispose()
    db = open_database(db_url)
    assert _key(Store(db).load_session(1).waves) == _key(expected.waves)
    db.close()


def test_two_clients_compacting_at_once_store_every_item_once(postgres):
    """A real second client moves the rows while the first is half-way: the first gives way."""
    url = postgres.new_database()
    store = Store(open_database(url))
    store.compact(_write(store, _items(2), writer="seed"))  # codes known: neither adds one
    session_id = _write(store, _items(30))
    expected = _key(store.load_session(session_id).numerics)
    other = Store(open_database(url))
    raced = threading.Event()

    @event.listens_for(store.db.engine, "before_cursor_execute")
    def _race(conn, cursor, statement, *args) -> None:
        if statement.startswith("DELETE FROM numerics") and not raced.is_set():
            raced.set()
            assert other.compact(session_id) > 0  # commits first

    assert store.compact(session_id) == 0  # found the rows gone: rolled back, nothing doubled
    assert raced.is_set()
    assert _key(store.load_session(session_id).numerics) == expected
    with store.db.engine.connect() as conn:
        blocks = conn.execute(
            select(func.count()).where(NumericBlockRow.session_id == session_id)
        ).scalar_one()
    assert blocks == 4  # one block per device and code, once
    store.db.close()
    other.db.close()


def test_a_compaction_committed_in_the_middle_of_a_load_hides_nothing(db_url):
    """The recorder compacts (another client, for real) between a load's read of the blocks
    and its read of the rows: the load sees every item once."""
    store = Store(open_database(db_url))
    session_id = _write(store, _items(40))
    expected = store.load_session(session_id)
    other = Store(open_database(db_url))
    cut = threading.Event()

    @event.listens_for(store.db.engine, "before_cursor_execute")
    def _compact_now(conn, cursor, statement, *args) -> None:
        tail = statement.lstrip().startswith("SELECT") and "FROM waves" in statement
        if tail and not cut.is_set():
            cut.set()  # the blocks were read: the rows move now, before they are read
            assert other.compact(session_id) > 0

    got = store.load_session(session_id)
    assert cut.is_set()
    assert _key(got.numerics) == _key(expected.numerics)
    assert _key(got.waves) == _key(expected.waves)
    store.db.close()
    other.db.close()


def test_the_recorder_compacts_while_it_records(tmp_path, monkeypatch):
    """A live recorder moves its rows into blocks as it goes (here every 0.2 s rather than
    every minute), a slice a cycle, and what it recorded reads back as it was published."""
    monkeypatch.setattr(recorder_module, "COMPACT_INTERVAL", 0.2)
    store = Store(open_database(f"sqlite:///{tmp_path / 'k.sqlite3'}"))
    session_id = store.create_session(SessionSetup("P-live"))
    hub: Hub = Hub()
    seen = Collector(hub.subscribe("test", maxsize=10**6))
    recorder = Recorder(store, session_id, hub, spool_folder=tmp_path / "spool")
    playback = PlaybackSettings(speed=300, seed=3, until=6 * 60)
    driver = SimDriver(DeviceSpec.parse("sim:typical"), hub.publish, playback=playback)
    driver.open()
    recorder.start()
    driver.start()
    assert seen.wait_for(lambda _: _count(store, WaveBlockRow) > 0, timeout=30)  # while live
    driver.join(60)
    time.sleep(1.0)
    recorder.stop()
    seen.collect_rest()
    assert _count(store, NumericBlockRow) > 0
    record = store.load_session(session_id)  # blocks and the rows of the last second or so
    numerics = [i for i in seen.items if isinstance(i, Numeric)]
    assert _key(record.numerics) == _key(sorted(numerics, key=lambda i: i.stamp.wall))
    waves = [i for i in seen.items if isinstance(i, WaveformBlock)]
    assert _key(record.waves) == _key(sorted(waves, key=lambda i: i.stamp.wall))
    assert not recorder.failing and recorder.written == len(seen.items)
    store.db.close()


def test_compaction_cut_by_a_crash_leaves_the_rows_as_they_were(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    store = Store(open_database(url))
    session_id = _write(store, _items(30))
    expected = store.load_session(session_id)
    with store.db.engine.connect() as conn:
        tx = conn.begin()
        compaction.compact(conn, session_id)
        tx.rollback()  # what SQLite's journal does for a process killed before the commit
    assert _count(store, NumericBlockRow) == 0
    assert _key(store.load_session(session_id).waves) == _key(expected.waves)
    store.db.close()
    with sqlite3.connect(tmp_path / "k.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_damaged_block_is_an_error_not_a_wrong_value():
    data = pack([(np.arange(5.0), 1)])
    assert unpack(data, [("<f8", 1, 5)])[1][0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    for bad in (data[:-3], b"nonsense", zlib.compress(b"\x09\x00" + bytes(40))):
        with pytest.raises(ValueError):
            unpack(bad, [("<f8", 1, 5)])
    with pytest.raises(ValueError):
        unpack(data, [("<f8", 1, 6)])  # shorter than its columns


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(0, 300)),
    hnp.arrays(np.float64, st.integers(0, 50)),
    st.integers(0, 2),
    st.integers(0, 255),
)
def test_packing_keeps_every_bit(f32, f64, order, tag):
    got_tag, (a, b) = unpack(
        pack([(f32, order), (f64, order)], tag),
        [("<f4", order, len(f32)), ("<f8", order, len(f64))],
    )
    assert got_tag == tag
    assert a.tobytes() == f32.astype("<f4").tobytes() and b.tobytes() == f64.tobytes()


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 200)))
def test_wave_samples_keep_every_bit_whichever_way_they_are_held(samples):
    tag, column = compaction._sample_column(samples)
    data = pack([(np.zeros(1, np.int64), 1), (np.array([len(samples)], np.int32), 1),
                 (np.zeros(1), 1), (np.zeros(1), 1), (np.zeros(1, np.uint8), 0), (column, 1)],
                tag)  # fmt: skip
    *_, back = compaction.wave_block(1, len(samples), data)
    assert back.astype("<f4").tobytes() == samples.tobytes()


def test_a_new_database_migrates_to_the_newest_revision(tmp_path):
    from alembic.script import ScriptDirectory

    db = open_database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    migrate(db)  # a second time: nothing to do
    with db.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == ScriptDirectory.from_config(_config()).get_current_head()
    assert version == HEAD_REVISION  # the constant that lets an up-to-date database skip Alembic
    assert int(version) >= 4
    db.close()


def test_a_database_at_the_newest_revision_opens_without_alembic(tmp_path):
    """Opening the record is most commands' start-up: one already migrated loads no Alembic."""
    url = f"sqlite:///{tmp_path / 'kept.sqlite3'}"
    open_database(url).close()  # created and migrated
    script = (
        "import sys\n"
        "from kapmonitor.record.db import open_database\n"
        f"open_database({url!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_database_from_a_newer_version_is_refused_in_one_sentence(tmp_path):
    """A schema revision this version does not know (a newer kapmonitor's): exit 2, one
    sentence, no traceback, and what the file holds left as it was."""
    path = tmp_path / "newer.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('0099')")
    kapmonitor = [sys.executable, "-m", "kapmonitor"]
    done = subprocess.run([*kapmonitor, "sessions", "list", "--db", f"sqlite:///{path}"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "newer version" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert tables == ["alembic_version"] and versions == [("0099",)]


def test_a_database_behind_the_newest_revision_is_still_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    db = open_database(url)
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    db.close()
    db = open_database(url)
    with db.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == HEAD_REVISION
    db.close()
