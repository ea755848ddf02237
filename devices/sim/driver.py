"""The simulator as an in-process device (``sim:SCENARIO``): a multiparameter monitor.

It feeds the pipeline directly, with no wire protocol, and stamps items in *simulated* time: at
``--speed 60`` an hour of session passes in a minute and every item carries the time the
simulated monitor would have stamped, so trends, alarms and the record see a true session.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from devices.base import DriverSettings, PlaybackDriver, PlaybackSettings, Publish
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import (
    ConnectionState,
    Flag,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
    WaveformBlock,
)

#: Pleth samples per second, as OpenICE's simulated oximeter.
PLETH_RATE = 100.0
#: Capnogram samples per second, as a Capnostream 20 sends its CO2 wave (one every 50 ms).
CO2_RATE = 20.0
#: Seconds between numeric updates, as most monitors refresh their displayed values.
NUMERIC_PERIOD = 1.0
#: Simulated seconds per step; pleth arrives in blocks of this length.
STEP = 0.25
#: Seconds of each wave computed at a time and handed out block by block: one numpy pass for
#: eight blocks. At ``--speed 10`` a block is due every 25 ms, and computed one by one the
#: waves were most of the simulator's CPU on the dosing-room screen.
AHEAD_S = 2.0
#: Flags that describe the whole oximeter signal, so they apply to the pleth block too.
SIGNAL_FLAGS = frozenset({Flag.SENSOR_OFF, Flag.ARTIFACT, Flag.SEARCHING})


class SimDriver(PlaybackDriver):
    """Plays a KAP-session scenario as a monitor with SpO2, pulse rate, PI, pleth and NIBP, and
    a capnograph: respiratory rate, EtCO2, inspired CO2 and the capnogram."""

    name = "sim"

    def __init__(
        self,
        spec: DeviceSpec,
        publish: Publish,
        settings: DriverSettings | None = None,
        playback: PlaybackSettings | None = None,
    ) -> None:
        super().__init__(spec, publish, settings, playback)
        play = self.playback
        self.session = KapSession(load_scenario(spec.target), seed=play.seed)
        duration = self.session.duration
        #: Session seconds after which the simulated device stops (default: the scenario's end).
        self.until = min(duration, play.until) if play.until else duration
        #: Headless, the scenario's dose is the session's T0; on screen the nurse marks it (and
        #: a nurse's mark during the session turns it off).
        self.publish_dose = play.publish_dose
        self._pleth = _WaveAhead(self.session.pleth, PLETH_RATE)
        self._co2 = _WaveAhead(self.session.capnogram, CO2_RATE)

    def _run(self) -> None:
        origin = self.origin
        self.begin()
        t = 0.0
        while t < self.until:
            t1 = min(t + STEP, self.until)
            self._step(origin, t, t1)
            if not self.wait_until(t1):
                break
            t = t1
        self._set_state(ConnectionState.DISCONNECTED, "the simulated session is over", self.at(t))

    def _step(self, origin: Stamp, t0: float, t1: float) -> None:
        session = self.session
        if not session.connected(t0):
            if self.state is ConnectionState.CONNECTED:
                stamp = origin.shifted(t0)
                self._set_state(
                    ConnectionState.DISCONNECTED, "the simulated device was unplugged", stamp
                )
                self._set_state(ConnectionState.RECONNECTING, stamp=stamp)
            return
        self._set_state(ConnectionState.CONNECTED, stamp=origin.shifted(t0))

        if self.publish_dose and session.dose_time is not None and t0 <= session.dose_time < t1:
            self._publish(
                SessionEvent(
                    self.source,
                    SessionEventKind.DOSE,
                    origin.shifted(session.dose_time),
                    "dose given (scenario timeline)",
                )
            )
        for k in range(math.ceil(t0 / NUMERIC_PERIOD), math.ceil(t1 / NUMERIC_PERIOD)):
            self._publish_vitals(origin, k * NUMERIC_PERIOD)
        for r in session.nibp_between(t0, t1):
            self._publish(
                NibpReading(
                    self.source, r.systolic, r.diastolic, r.mean, origin.shifted(r.t), r.flags
                )
            )
        first, end = math.ceil(t0 * PLETH_RATE), math.ceil(t1 * PLETH_RATE)
        if end > first:
            ts = first / PLETH_RATE
            self._publish(
                WaveformBlock(
                    self.source,
                    Code.PLETH,
                    origin.shifted(ts),
                    PLETH_RATE,
                    self._pleth.take(first, end - first),
                    session.vitals(ts).flags & SIGNAL_FLAGS,
                )
            )
        first, end = math.ceil(t0 * CO2_RATE), math.ceil(t1 * CO2_RATE)
        if end > first:
            ts = first / CO2_RATE
            self._publish(
                WaveformBlock(
                    self.source,
                    Code.CO2,
                    origin.shifted(ts),
                    CO2_RATE,
                    self._co2.take(first, end - first),
                    session.breathing(ts).flags,
                )
            )

    def _publish_vitals(self, origin: Stamp, t: float) -> None:
        v = self.session.vitals(t)
        stamp = origin.shifted(t)
        # Rounded as a monitor displays them: whole beats and percent, PI to 0.01 %.
        for code, value, digits in (
            (Code.PULSE_RATE, v.heart_rate, 0),
            (Code.SPO2, v.spo2, 0),
            (Code.PERFUSION, v.perfusion_index, 2),
        ):
            shown = None if value is None else round(value, digits or None)
            self._publish(Numeric(self.source, code, shown, stamp, v.flags))
        b = self.session.breathing(t)
        # A capnograph shows whole breaths a minute and whole mmHg.
        for code, value in (
            (Code.RESP_RATE, b.resp_rate),
            (Code.CO2_ET, b.etco2),
            (Code.CO2_INSP_MIN, b.fico2),
        ):
            shown = None if value is None else float(round(value))
            self._publish(Numeric(self.source, code, shown, stamp, b.flags))


class _WaveAhead:
    """One wave of the session computed :data:`AHEAD_S` ahead and handed out by sample index.

    The session's waves are functions of each sample's time alone, so a block cut from a longer
    stretch holds the samples the block alone would have.
    """

    def __init__(self, wave: Callable[[float, int, float], np.ndarray], fs: float) -> None:
        self._wave = wave
        self._fs = fs
        self._first = 0  #: index of the first sample computed
        self._samples = np.zeros(0)

    def take(self, first: int, n: int) -> np.ndarray:
        """Samples ``first`` to ``first + n`` (a copy: a block owns its samples)."""
        start = first - self._first
        if start < 0 or start + n > len(self._samples):
            self._first, start = first, 0
            self._samples = self._wave(
                first / self._fs, max(n, round(AHEAD_S * self._fs)), self._fs
            )
        return self._samples[start : start + n].copy()
