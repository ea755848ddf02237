"""Breathing in the record and the replay (issue 17): a simulated apnoea recorded through the
real pipeline (hub, alarm service, recorder, SQLite), read back with the public Store API, and
played again as ``replay:SESSION``: the rate, EtCO2 and inspired CO2 (missing stays missing),
and the capnogram as a second waveform beside the pleth.
"""

from __future__ import annotations

import time

import numpy as np

from alarms.profile import load_profile
from alarms.service import AlarmService
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import Flag, Numeric, WaveformBlock
from kapmonitor.record.db import open_database
from kapmonitor.record.recorder import Recorder
from kapmonitor.record.replay import ReplayDriver
from kapmonitor.record.session import Drug, Route, SessionSetup, SessionStatus
from kapmonitor.record.store import Store
from tests.pipeline_helpers import Collector

APNOEA = (1800.0, 1830.0)  #: 20 min after the dose at 10 min, for 30 s
BREATHING = (Code.RESP_RATE, Code.CO2_ET, Code.CO2_INSP_MIN)


def record_apnoea(url: str, tmp_path) -> tuple[Store, int, list]:
    store = Store(open_database(url))
    hub = Hub()
    seen = Collector(hub.subscribe("test", maxsize=10**6))
    service = AlarmService(hub, load_profile())
    session_id = store.create_session(
        SessionSetup("P-17", "Dr K", "nurse A", Drug.KETAMINE, Route.IV, 35, "mg")
    )
    recorder = Recorder(store, session_id, hub, service.out, spool_folder=tmp_path / "spool")
    playback = PlaybackSettings(speed=1e5, seed=5, until=APNOEA[1] + 60)
    driver = SimDriver(DeviceSpec.parse("sim:apnea"), hub.publish, playback=playback)
    driver.open()
    recorder.start()
    service.start()
    driver.start()
    assert driver.join(120)
    time.sleep(0.3)
    service.stop()
    recorder.stop()
    store.end_session(session_id, SessionStatus.COMPLETED)
    seen.collect_rest()
    return store, session_id, seen.items


def test_breathing_values_and_the_capnogram_are_recorded_and_replayed(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'kap.db'}"
    store, session_id, items = record_apnoea(url, tmp_path)
    record = store.load_session(session_id)

    sent = [i for i in items if isinstance(i, Numeric) and i.code in BREATHING]
    stored = [n for n in record.numerics if n.code in BREATHING]
    key = lambda n: (n.stamp.wall, n.code.value)  # noqa: E731  # order within an instant
    assert sorted(stored, key=key) == sorted(sent, key=key)
    origin = min(n.stamp.wall for n in record.numerics)
    apnoea = [
        n
        for n in stored
        if n.code is Code.RESP_RATE and APNOEA[0] <= n.stamp.wall - origin < APNOEA[1]
    ]
    assert len(apnoea) == 30 and all(n.value == 0 and Flag.NO_BREATH in n.flags for n in apnoea)
    no_end_tide = [n for n in stored if n.code is Code.CO2_ET and n.value is None]
    assert len(no_end_tide) == 30  # missing stays missing, never 0

    # The capnogram is a second waveform beside the pleth, each stored whole.
    sent_co2 = [i for i in items if isinstance(i, WaveformBlock) and i.code is Code.CO2]
    got_co2 = [w for w in record.waves if w.code is Code.CO2]
    assert len(got_co2) == len(sent_co2) > 0
    assert {w.code for w in record.waves} == {Code.PLETH, Code.CO2}
    for got, want in zip(got_co2, sent_co2, strict=True):
        assert (got.stamp, got.fs, got.flags) == (want.stamp, want.fs, want.flags)
        np.testing.assert_allclose(got.samples, want.samples, rtol=1e-6, atol=1e-5)
    # A span of waves for review holds both.
    t0 = origin + APNOEA[0] - 5
    span = store.load_waves(session_id, t0, t0 + 10)
    assert {w.code for w in span} == {Code.PLETH, Code.CO2}
    store.db.close()

    # Replayed: the same breathing values and capnogram, as the replay device's.
    replayed: list = []
    replay = ReplayDriver(
        DeviceSpec.parse(f"replay:{session_id}"),
        replayed.append,
        playback=PlaybackSettings(speed=1e6),
        db=url,
    )
    replay.open()
    replay.start()
    assert replay.join(60)
    again = [i for i in replayed if isinstance(i, Numeric) and i.code in BREATHING]
    assert [(n.code, n.value, n.flags) for n in again] == [
        (n.code, n.value, n.flags) for n in sorted(stored, key=lambda n: n.stamp.wall)
    ]
    co2_again = [i for i in replayed if isinstance(i, WaveformBlock) and i.code is Code.CO2]
    assert len(co2_again) == len(got_co2)
    assert np.array_equal(
        np.concatenate([w.samples for w in co2_again]),
        np.concatenate([w.samples for w in got_co2]),
    )
    assert all(i.source == f"replay:{session_id}" for i in again)
