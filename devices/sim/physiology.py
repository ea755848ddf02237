"""The simulated patient of one KAP session: vitals, pleth and cuff readings as pure functions.

Everything random is drawn once, at construction, from ``numpy.random.default_rng`` seeded by
the seed and the scenario name; slow physiological variation lives on a 1-second grid. Every
method is then a pure function of session time, so a device emulator, the in-process driver and
a test see the same patient whatever order or chunk sizes they ask in, and a seed reproduces a
session exactly.

The drug response follows the shape reported for IV ketamine (Yale series: BP peaks near 40 min,
mean rise +16/+11 mmHg, back to baseline within about 1.5 h): ``rise(t) = A * (x e^(1-x))^k``
with ``x = (t - dose) / peak``, which is 0 at the dose, exactly ``A`` at the peak and falls
smoothly after it; ``k`` is chosen per session so the rise is down to 10 % of ``A`` by
``peak + resolve_min``.

Breathing (issue 17) has a random stream of its own, so the values every scenario had before
it (pinned by the tests) are unchanged: a respiratory rate and an EtCO2 drifting about the
patient's baseline, courses of respiratory depression (the rate falls and EtCO2 climbs over
minutes, the hypoventilation capnography shows before the SpO2 falls), apnoea windows (no
breath: rate 0, no end-tidal value, a flat capnogram) and windows with the sampling line off
(no CO2 values, a flat capnogram: a technical state, not apnoea), and a capnogram whose breaths
follow the rate and whose plateau reaches the EtCO2.
"""

from __future__ import annotations

import bisect
import math
import zlib
from dataclasses import dataclass

import numpy as np

from devices.sim.scenario import COURSE_KINDS, Fault, NibpPlan, Scenario, Spread
from kapmonitor.core.model import Flag

#: Fraction of the peak rise left at ``peak + resolve_min``.
RESOLVED_FRACTION = 0.05
#: Seconds an oximeter searches for a pulse after the probe is back on, showing no values.
SEARCH_S = 6.0
#: Perfusion index (%) below which oximeters flag low perfusion.
LOW_PERFUSION_PI = 0.4
#: The 1-s grid runs this far past the end, so a reader slightly past it still gets values.
PAD_S = 120
#: Correlation of the per-session draws: a patient whose systolic rises a lot tends to have a
#: larger diastolic and heart-rate rise too.
RHO_DIA = 0.7
RHO_HR = 0.4


@dataclass(frozen=True)
class Vitals:
    """What an oximeter would show at session time ``t`` (seconds from the scenario start).

    A value is ``None`` when there is no signal (probe off, searching), never 0.
    """

    t: float
    heart_rate: float | None
    spo2: float | None
    perfusion_index: float | None
    flags: frozenset[Flag]


@dataclass(frozen=True)
class Breathing:
    """What a capnograph would show at session time ``t``; None when there is no reading."""

    t: float
    resp_rate: float | None  #: breaths a minute; 0 during apnoea (a measured absence)
    etco2: float | None  #: mmHg; None with no breath (no end tide) or the line off
    fico2: float | None  #: inspired CO2, mmHg
    flags: frozenset[Flag]


@dataclass(frozen=True)
class SimNibp:
    """One cuff reading; ``t`` is when the cuff finished measuring (session seconds)."""

    t: float
    systolic: int | None  #: all three are None when the measurement failed
    diastolic: int | None
    mean: int | None
    mode: str  #: "predose" | "auto" | "stat" | "manual"
    flags: frozenset[Flag]


def response_exponent(peak_min: float, resolve_min: float) -> float:
    """The ``k`` that brings the rise down to :data:`RESOLVED_FRACTION` at peak + resolve."""
    x = 1.0 + resolve_min / peak_min
    return math.log(RESOLVED_FRACTION) / math.log(x * math.exp(1.0 - x))


def response_curve(minutes_after_dose: np.ndarray | float, peak_min: float, k: float) -> np.ndarray:
    """The drug-effect shape, 0 before the dose and 1 at the peak."""
    x = np.maximum(np.asarray(minutes_after_dose, dtype=np.float64) / peak_min, 0.0)
    with np.errstate(divide="ignore"):
        log_f = np.log(x) + 1.0 - x
    return np.where(x > 0, np.exp(k * log_f), 0.0)


class KapSession:
    """One simulated patient going through a scenario, reproducible from ``seed``."""

    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.duration = scenario.duration_min * 60.0
        self.dose_time = None if scenario.dose_at_min is None else scenario.dose_at_min * 60.0
        self._t0 = scenario.t0_min * 60.0  # where fault and NIBP times count from

        # Independent streams, so that adding a fault does not change the patient's draws.
        root = np.random.SeedSequence([zlib.crc32(scenario.name.encode()), seed % 2**64])
        # Spawned children depend only on their index: the first six are those of the sessions
        # before breathing was added, so every earlier value is unchanged.
        streams = [np.random.default_rng(s) for s in root.spawn(7)]
        draws, series, noise, faults, cuff, wave, breath = streams
        self._draw_patient(draws)
        self._n = math.ceil(self.duration) + PAD_S + 1
        self._grid = np.arange(self._n, dtype=np.float64)
        self._build_series(series, noise)
        self._build_windows(faults)
        self._build_pleth(wave)
        self.nibp_readings: tuple[SimNibp, ...] = self._build_nibp(cuff)
        self._nibp_t = [r.t for r in self.nibp_readings]
        self._build_breathing(breath)

    # --- construction ----------------------------------------------------------------------------

    def _draw_patient(self, rng: np.random.Generator) -> None:
        b = self.scenario.baseline
        z = rng.standard_normal(5)
        z_dia = RHO_DIA * z[2] + math.sqrt(1 - RHO_DIA**2) * z[3]
        sys = _clip_draw(b.systolic, z[2], 60.0, 260.0)
        dia = _clip_draw(b.diastolic, z_dia, 30.0, 160.0)
        self._drawn: dict[str, float] = {
            "baseline_heart_rate": _clip_draw(b.heart_rate, z[0], 30.0, 200.0),
            "baseline_spo2": _clip_draw(b.spo2, z[1], 70.0, 100.0),
            "baseline_systolic": sys,
            "baseline_diastolic": min(dia, sys - 20.0),
            "baseline_perfusion_index": _clip_draw(b.perfusion_index, z[4], 0.1, 20.0),
        }
        r = self.scenario.response
        if r is None:
            return
        z = rng.standard_normal(4)
        z_dia = RHO_DIA * z[0] + math.sqrt(1 - RHO_DIA**2) * z[1]
        z_hr = RHO_HR * z[0] + math.sqrt(1 - RHO_HR**2) * z[2]
        peak = max(_clip_draw(r.peak_min, z[3]), 1.0)
        self._drawn.update(
            systolic_rise=_clip_draw(r.systolic_rise, z[0]),
            diastolic_rise=_clip_draw(r.diastolic_rise, z_dia),
            heart_rate_rise=_clip_draw(r.heart_rate_rise, z_hr),
            peak_min=peak,
            resolve_min=r.resolve_min,
            response_k=response_exponent(peak, r.resolve_min),
        )

    def _build_series(self, rng: np.random.Generator, noise: np.random.Generator) -> None:
        d, n, t = self._drawn, self._n, self._grid
        drug = np.zeros(n)
        if self.dose_time is not None:
            drug = response_curve((t - self.dose_time) / 60.0, d["peak_min"], d["response_k"])
        rise = {key: d.get(key, 0.0) * drug for key in ("systolic_rise", "diastolic_rise")}
        hr_rise = d.get("heart_rate_rise", 0.0) * drug

        bp_drift = _ou(rng, n, 2.5, 900.0)
        sys = d["baseline_systolic"] + bp_drift + rise["systolic_rise"]
        dia = d["baseline_diastolic"] + 0.5 * bp_drift + _ou(rng, n, 1.5, 900.0)
        dia += rise["diastolic_rise"]
        hr = d["baseline_heart_rate"] + _ou(rng, n, 2.5, 120.0) + hr_rise
        spo2 = np.minimum(d["baseline_spo2"] + _ou(rng, n, 0.4, 180.0), 100.0)
        pi = d["baseline_perfusion_index"] * np.exp(_ou(rng, n, 0.12, 150.0))

        for f in self.scenario.faults:
            if f.kind not in COURSE_KINDS:
                continue
            w = self._course(f)
            if f.kind == "desaturation":
                spo2 = spo2 + w * (f.nadir - spo2)
            elif f.kind == "bradycardia":
                assert f.heart_rate is not None, "a bradycardia has one (FAULT_KEYS)"
                hr = hr + w * (f.heart_rate - hr)
            elif f.kind == "severe-hypertension":
                assert f.systolic_rise is not None and f.diastolic_rise is not None
                sys = sys + w * f.systolic_rise
                dia = dia + w * f.diastolic_rise
                hr = hr + w * (f.heart_rate_rise or 0.0)

        self._sys = sys
        self._dia = np.minimum(dia, sys - 15.0)
        # What the pulse does (beats of the pleth follow it), then what the oximeter reads.
        self._hr_beat = np.clip(hr, 20.0, 250.0)
        self._hr = np.clip(hr + noise.normal(0.0, 0.7, n), 20.0, 250.0)
        self._spo2 = np.clip(spo2 + noise.normal(0.0, 0.2, n), 50.0, 100.0)
        self._pi = np.clip(pi * np.exp(noise.normal(0.0, 0.03, n)), 0.02, 20.0)
        # Motion corrupts the readings during artifact bursts: jumpy rate, falsely low SpO2.
        self._art_hr = noise.normal(0.0, 12.0, n)
        self._art_spo2 = -np.abs(noise.normal(0.0, 3.0, n))
        self._art_pi = np.exp(noise.normal(0.0, 0.5, n))

    def _course(self, f: Fault) -> np.ndarray:
        """0..1: ramp in, hold, recover, with smooth corners (a body does not step)."""
        start = self._t0 + f.start_min * 60.0
        end = start + f.duration_min * 60.0
        ramp = max((f.ramp_min or 0.0) * 60.0, 1e-9)
        recover = max((f.recover_min or 0.0) * 60.0, 1e-9)
        u = np.minimum((self._grid - start) / ramp, (end - self._grid) / recover)
        u = np.clip(u, 0.0, 1.0)
        return u * u * (3.0 - 2.0 * u)

    def _build_windows(self, rng: np.random.Generator) -> None:
        def windows(kind: str) -> list[tuple[float, float]]:
            return [
                (self._t0 + f.start_min * 60.0, self._t0 + f.end_min * 60.0)
                for f in self.scenario.faults_of(kind)
            ]

        self._probe_off = _Windows(windows("probe-off"))
        searching = [(end, end + SEARCH_S) for _, end in self._probe_off.pairs()]
        self._searching = _Windows(searching)
        self._unplugged = _Windows(windows("unplug"))
        self._nibp_failed = _Windows(windows("nibp-failed"))
        bursts: list[tuple[float, float]] = []
        for f in self.scenario.faults_of("artifact"):
            start = self._t0 + f.start_min * 60.0
            end = start + f.duration_min * 60.0
            burst, gap = f.burst_s or 6.0, f.gap_s or 10.0
            t = start
            while t < end:
                length = burst * rng.uniform(0.4, 1.6)
                bursts.append((t, min(t + length, end)))
                t += length + gap * rng.uniform(0.4, 1.6)
        self._artifact = _Windows(bursts)

    def _build_pleth(self, rng: np.random.Generator) -> None:
        # Beat onsets: integrate the pulse rate into a beat count, then invert it.
        rate = self._hr_beat / 60.0
        beats = np.concatenate(([0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]))))
        first = 60.0 / self._hr_beat[0]
        # Two beats before t = 0, so every sample has a previous beat to look back on.
        self._onsets = np.concatenate(
            (
                [-2 * first, -first],
                np.interp(np.arange(math.floor(beats[-1]) + 1), beats, self._grid),
            )
        )
        self._beats = beats + 2.0  # floor(...) indexes _onsets
        self._beat_amp = 1.0 + 0.03 * rng.standard_normal(len(self._onsets))
        self._resp_hz = rng.uniform(12.0, 16.0) / 60.0
        self._resp_phase = rng.uniform(0.0, 2 * math.pi, 2)
        # Sensor noise and motion as sums of sines: noise-like, yet a pure function of time.
        self._noise_f = rng.uniform(4.0, 30.0, 12)
        self._noise_p = rng.uniform(0.0, 2 * math.pi, 12)
        self._motion_f = rng.uniform(0.5, 7.0, 8)
        self._motion_p = rng.uniform(0.0, 2 * math.pi, 8)
        self._motion_a = rng.uniform(0.5, 1.5, 8) * 0.12

    def _build_breathing(self, rng: np.random.Generator) -> None:
        b, n = self.scenario.baseline, self._n
        z = rng.standard_normal(2)
        base_rr = _clip_draw(b.resp_rate, z[0], 4.0, 40.0)
        base_et = _clip_draw(b.etco2, z[1], 20.0, 60.0)
        self._drawn.update(baseline_resp_rate=base_rr, baseline_etco2=base_et)
        rr = base_rr + _ou(rng, n, 0.8, 300.0)
        et = base_et + _ou(rng, n, 1.0, 400.0)
        for f in self.scenario.faults_of("respiratory-depression"):
            assert f.resp_rate is not None and f.etco2_rise is not None, "FAULT_KEYS"
            w = self._course(f)
            rr = rr + w * (f.resp_rate - rr)
            et = et + w * f.etco2_rise
        self._apnea = _Windows(self._fault_windows("apnea"))
        self._line_off = _Windows(self._fault_windows("sampling-line-off"))
        # What the lungs do (breaths of the capnogram follow it), then what the device reads.
        breathing = ~self._apnea.mask(self._grid)
        self._rr_true = np.clip(rr, 2.0, 60.0) * breathing
        self._rr = np.clip(rr + rng.normal(0.0, 0.4, n), 2.0, 60.0)
        self._etco2 = np.clip(et + rng.normal(0.0, 0.5, n), 5.0, 120.0)
        self._fico2 = np.abs(rng.normal(0.0, 0.4, n))  # room air: 0-1 mmHg
        # Breath onsets, as the pleth's beats: integrate the rate, then invert.
        count = np.concatenate(
            ([0.0], np.cumsum(0.5 * (self._rr_true[1:] + self._rr_true[:-1]) / 60.0))
        )
        self._breath_count = count
        self._breath_on = np.interp(np.arange(math.floor(count[-1]) + 1), count, self._grid)

    def _fault_windows(self, kind: str) -> list[tuple[float, float]]:
        return [
            (self._t0 + f.start_min * 60.0, self._t0 + f.end_min * 60.0)
            for f in self.scenario.faults_of(kind)
        ]

    def _build_nibp(self, rng: np.random.Generator) -> tuple[SimNibp, ...]:
        plan = self.scenario.nibp
        starts: list[tuple[float, str]] = []
        if self.dose_time is not None:
            for j in range(plan.predose_readings):
                minutes = (plan.predose_readings - j) * plan.predose_every_min
                starts.append((self.dose_time - minutes * 60.0, "predose"))
        last_min = (self.duration - plan.measure_s - self._t0) / 60.0
        starts += [(self._t0 + m * 60.0, "auto") for m in _schedule_minutes(plan, last_min)]
        starts += [(self._t0 + x.at_min * 60.0, x.mode) for x in plan.extra]
        starts.sort(key=lambda s: s[0])

        readings: list[SimNibp] = []
        for start, mode in starts:
            finish = start + plan.measure_s
            noise = rng.standard_normal(2)
            if finish > self.duration:
                continue
            if self._nibp_failed.overlaps(start, finish):
                readings.append(
                    SimNibp(finish, None, None, None, mode, frozenset({Flag.MEASUREMENT_FAILED}))
                )
                continue
            sys, dia = self.true_bp(start + plan.measure_s / 2)
            sys += plan.noise_sd * noise[0]
            dia += plan.noise_sd * (0.5 * noise[0] + math.sqrt(0.75) * noise[1])
            dia = min(dia, sys - 10.0)
            mean = dia + (sys - dia) / 3.0
            readings.append(SimNibp(finish, round(sys), round(dia), round(mean), mode, frozenset()))
        return tuple(readings)

    # --- queries ---------------------------------------------------------------------------------

    def nibp_between(self, t0: float, t1: float) -> list[SimNibp]:
        """Readings whose cuff finished in ``[t0, t1)``."""
        lo = bisect.bisect_left(self._nibp_t, t0)
        hi = bisect.bisect_left(self._nibp_t, t1)
        return list(self.nibp_readings[lo:hi])

    def vitals(self, t: float) -> Vitals:
        """What the oximeter shows at ``t``; times outside the session read its nearest edge."""
        if self._probe_off.contains(t):
            return Vitals(t, None, None, None, frozenset({Flag.SENSOR_OFF}))
        if self._searching.contains(t):
            return Vitals(t, None, None, None, frozenset({Flag.SEARCHING}))
        i, frac = self._index(t)
        hr = _lerp(self._hr, i, frac)
        spo2 = _lerp(self._spo2, i, frac)
        pi = _lerp(self._pi, i, frac)
        flags: set[Flag] = set()
        if self._artifact.contains(t):
            flags.add(Flag.ARTIFACT)
            hr = min(max(hr + _lerp(self._art_hr, i, frac), 25.0), 250.0)
            spo2 = min(max(spo2 + _lerp(self._art_spo2, i, frac), 50.0), 100.0)
            pi *= _lerp(self._art_pi, i, frac)
        if pi < LOW_PERFUSION_PI:
            flags.add(Flag.LOW_PERFUSION)
        return Vitals(t, hr, spo2, pi, frozenset(flags))

    def pleth(self, t0: float, n: int, fs: float) -> np.ndarray:
        """``n`` pleth samples from ``t0`` at ``fs`` Hz, 0..1, NaN while the probe is off.

        A pure function of each sample's time, so any chunking gives the same wave.
        """
        t = t0 + np.arange(n, dtype=np.float64) / fs
        tc = np.clip(t, 0.0, self._grid[-1])
        k = np.floor(np.interp(tc, self._grid, self._beats)).astype(np.int64)
        k = np.clip(k, 0, len(self._onsets) - 2)
        onset = self._onsets[k]
        y = _beat_shape(tc - onset, self._onsets[k + 1] - onset) * self._beat_amp[k]
        resp = 2 * math.pi * self._resp_hz * t
        y = 0.15 + 0.7 * y * (1.0 + 0.06 * np.sin(resp + self._resp_phase[0]))
        y += 0.03 * np.sin(resp + self._resp_phase[1])
        y += 0.0015 * np.sin(np.outer(t, 2 * math.pi * self._noise_f) + self._noise_p).sum(axis=1)
        moving = self._artifact.mask(t)
        if moving.any():
            motion = np.sin(np.outer(t, 2 * math.pi * self._motion_f) + self._motion_p)
            y += moving * (motion @ self._motion_a)
        y = np.clip(y, 0.0, 1.0)
        y[self._probe_off.mask(t)] = np.nan
        return y

    def breathing(self, t: float) -> Breathing:
        """What a capnograph shows at ``t``: the rate and CO2 values, or why there are none."""
        if self._line_off.contains(t):
            return Breathing(t, None, None, None, frozenset({Flag.SENSOR_OFF}))
        i, frac = self._index(t)
        fico2 = _lerp(self._fico2, i, frac)
        if self._apnea.contains(t):
            return Breathing(t, 0.0, None, fico2, frozenset({Flag.NO_BREATH}))
        rr = _lerp(self._rr, i, frac)
        return Breathing(t, rr, _lerp(self._etco2, i, frac), fico2, frozenset())

    def capnogram(self, t0: float, n: int, fs: float) -> np.ndarray:
        """``n`` CO2 samples (mmHg) from ``t0`` at ``fs`` Hz: a pure function of time.

        Each breath starts with expiration: a steep rise (phase II) to a plateau that climbs
        gently to the EtCO2 at its end (phase III), then the inspiratory down-stroke to the
        inspired CO2 (near 0), flat through inspiration. No breath (apnoea) and a line that is
        off read the baseline: the signal goes flat.
        """
        t = t0 + np.arange(n, dtype=np.float64) / fs
        tc = np.clip(t, 0.0, self._grid[-1])
        count = np.interp(tc, self._grid, self._breath_count)
        k = np.clip(np.floor(count).astype(np.int64), 0, max(len(self._breath_on) - 2, 0))
        onset = self._breath_on[k] if len(self._breath_on) > 1 else np.zeros_like(tc)
        length = (
            self._breath_on[k + 1] - onset if len(self._breath_on) > 1 else np.full_like(tc, 4.0)
        )
        tau = tc - onset
        et = np.interp(tc, self._grid, self._etco2)
        base = np.interp(tc, self._grid, self._fico2)
        expire = 0.55 * length  # expiration takes a little over half a breath at rest
        rise = np.minimum(0.35, 0.15 * length)
        fall = np.minimum(0.25, 0.08 * length)
        plateau = (0.9 + 0.1 * np.clip((tau - rise) / np.maximum(expire - rise, 1e-6), 0, 1)) * et
        u = np.clip(tau / rise, 0.0, 1.0)
        y = base + (plateau - base) * (u * u * (3.0 - 2.0 * u))
        d = np.clip((tau - expire) / fall, 0.0, 1.0)
        y = y + (base - y) * (d * d * (3.0 - 2.0 * d))
        flat = self._apnea.mask(t) | self._line_off.mask(t)
        return np.where(flat, base, y)

    def connected(self, t: float) -> bool:
        """False while the scenario has the device unplugged."""
        return not self._unplugged.contains(t)

    def true_bp(self, t: float) -> tuple[float, float]:
        """The patient's systolic and diastolic at ``t``, without measurement noise."""
        i, frac = self._index(t)
        return _lerp(self._sys, i, frac), _lerp(self._dia, i, frac)

    def drug_effect(self, t: float) -> tuple[float, float, float]:
        """The drug's share of systolic, diastolic and heart rate at ``t`` (0 with no dose)."""
        if self.dose_time is None:
            return 0.0, 0.0, 0.0
        d = self._drawn
        c = float(response_curve((t - self.dose_time) / 60.0, d["peak_min"], d["response_k"]))
        return d["systolic_rise"] * c, d["diastolic_rise"] * c, d["heart_rate_rise"] * c

    def drawn(self) -> dict[str, float]:
        """This session's draws: baselines, and with a dose the rises, peak_min and the shape k."""
        return dict(self._drawn)

    def _index(self, t: float) -> tuple[int, float]:
        tc = min(max(float(t), 0.0), self._grid[-1] - 1.0)
        i = int(tc)
        return i, tc - i


class _Windows:
    """Half-open time windows ``[start, end)``, merged so lookups are one bisection."""

    def __init__(self, pairs: list[tuple[float, float]]) -> None:
        merged: list[list[float]] = []
        for start, end in sorted(pairs):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = np.array([m[0] for m in merged], dtype=np.float64)
        self.ends = np.array([m[1] for m in merged], dtype=np.float64)
        self._starts = self.starts.tolist()
        self._ends = self.ends.tolist()

    def pairs(self) -> list[tuple[float, float]]:
        return list(zip(self._starts, self._ends, strict=True))

    def contains(self, t: float) -> bool:
        i = bisect.bisect_right(self._starts, t) - 1
        return i >= 0 and t < self._ends[i]

    def overlaps(self, t0: float, t1: float) -> bool:
        return any(s < t1 and t0 < e for s, e in zip(self._starts, self._ends, strict=True))

    def mask(self, t: np.ndarray) -> np.ndarray:
        if not self._starts:
            return np.zeros(t.shape, dtype=bool)
        i = np.searchsorted(self.starts, t, side="right") - 1
        return (i >= 0) & (t < self.ends[np.maximum(i, 0)])


def _beat_shape(tau: np.ndarray, length: np.ndarray) -> np.ndarray:
    """One pulse of a finger PPG, 0 at the foot and 1 at the systolic peak.

    Key points (foot, systolic peak, dicrotic notch, diastolic wave, late diastole, next foot)
    joined by a monotone cubic, flat at each extremum, so every beat meets the next smoothly.
    The upstroke keeps roughly its own length as the rate changes; diastole takes up the rest.
    """
    peak = 0.10 + 0.09 * length
    notch = peak + 0.10 + 0.12 * length
    wave = notch + 0.04 + 0.03 * length
    squeeze = np.minimum(1.0, 0.8 * length / wave)  # fast rates: keep the shape inside the beat
    peak, notch, wave = peak * squeeze, notch * squeeze, wave * squeeze
    late = wave + 0.4 * (length - wave)
    knots_x = np.stack([np.zeros_like(length), peak, notch, wave, late, length], axis=1)
    # Slope at the late-diastole knot: harmonic mean of its two secants (Fritsch-Carlson).
    d1 = (_BEAT_Y[4] - _BEAT_Y[3]) / (late - wave)
    d2 = (_BEAT_Y[5] - _BEAT_Y[4]) / (length - late)
    slopes = np.zeros_like(knots_x)
    slopes[:, 4] = 2.0 / (1.0 / d1 + 1.0 / d2)
    seg = np.clip((tau[:, None] >= knots_x[:, 1:5]).sum(axis=1), 0, 4)
    rows = np.arange(len(tau))
    xa, xb = knots_x[rows, seg], knots_x[rows, seg + 1]
    h = xb - xa
    u = np.clip((tau - xa) / h, 0.0, 1.0)
    u2, u3 = u * u, u * u * u
    return (
        (2 * u3 - 3 * u2 + 1) * _BEAT_Y[seg]
        + (u3 - 2 * u2 + u) * h * slopes[rows, seg]
        + (3 * u2 - 2 * u3) * _BEAT_Y[seg + 1]
        + (u3 - u2) * h * slopes[rows, seg + 1]
    )


#: Heights at the key points of :func:`_beat_shape`.
_BEAT_Y = np.array([0.0, 1.0, 0.52, 0.58, 0.3, 0.0])


def _ou(rng: np.random.Generator, n: int, sd: float, tau_s: float) -> np.ndarray:
    """A stationary Ornstein-Uhlenbeck series on the 1-s grid (slow physiological drift).

    ``x[i] = a x[i-1] + w[i]`` is solved as a prefix scan in log2(n) whole-array steps instead
    of a Python loop per second, which keeps a 3-hour session's construction in milliseconds
    (and needs no BLAS, whose threads stall on a busy machine).
    """
    a = math.exp(-1.0 / tau_s)
    x = rng.standard_normal(n) * (sd * math.sqrt(1.0 - a * a))
    x[0] = rng.standard_normal() * sd  # start in the stationary distribution
    shift, gain = 1, a
    while shift < n and gain > 1e-18:
        x[shift:] += gain * x[:-shift]
        shift, gain = 2 * shift, gain * gain
    return x


def _clip_draw(spread: Spread, z: float, low: float = -math.inf, high: float = math.inf) -> float:
    """A draw, also kept inside what a living patient can show."""
    return min(max(spread.at(float(z)), low), high)


def _schedule_minutes(plan: NibpPlan, last_min: float) -> list[float]:
    """Auto-cycle start times (minutes after the dose) up to ``last_min``."""
    out: list[float] = []
    rel = 0.0
    for seg in plan.schedule:
        while rel + seg.every_min <= min(seg.until_min, last_min):
            rel += seg.every_min
            out.append(rel)
    return out


def _lerp(a: np.ndarray, i: int, frac: float) -> float:
    return float(a[i] + (a[i + 1] - a[i]) * frac)
