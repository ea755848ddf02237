"""Auditory alarm signals in the style of IEC 60601-1-8: rendered with numpy, checked by analysis.

The numbers come from /work/shared/reference/clinical-and-alarms.md section (b), a secondary
source quoting the standard's Tables 3 and 4. The reference does not say where on a pulse's
edges times are measured; the conventions here follow a public third-party IEC 60601-1-8 tone
generator (wavtools.py, not the standard itself):

* pulse duration t_d: from the 90 % point of the rise to the 90 % point of the fall;
* rise time t_r: from 10 % to 90 % of the pulse amplitude (the fall mirrors it);
* pulse spacing t_s: from the 90 % point of one fall to the 90 % point of the next rise.

The defaults are chosen so that they also stay inside the ranges if durations and spacings are
measured at the 10 % points instead (see ``BURSTS``). ``analyse_burst`` measures the same
quantities from samples, so a rendered or recorded burst can be checked against the ranges.

Plain numpy and stdlib only: alarms/ must run without Qt. The Qt side plays ``write_wav`` files
or ``wav_bytes`` through QSoundEffect.
"""

from __future__ import annotations

import io
import itertools
import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alarms.model import Priority

__all__ = [
    "BURSTS",
    "BurstAnalysis",
    "BurstSpec",
    "PulseMeasure",
    "analyse_burst",
    "render_burst",
    "render_cycle",
    "render_spec",
    "wav_bytes",
    "write_wav",
]

# Raised-cosine ramp g(u) = (1 - cos(pi u)) / 2 on u in [0, 1]: where it crosses 10 % and 90 %.
# A raised cosine (instead of a linear ramp) keeps the pulse edges free of clicks/splatter.
_U10 = math.acos(0.8) / math.pi  # g(_U10) = 0.1, about 0.2048
_U90 = math.acos(-0.8) / math.pi  # g(_U90) = 0.9, about 0.7952
_RISE_PER_RAMP = _U90 - _U10  # 10->90 % time as a fraction of the ramp length, about 0.5903


@dataclass(frozen=True)
class BurstSpec:
    """One priority's burst: pitch, timbre, pulse shape and rhythm (times in seconds).

    Times use the module's 90 % conventions, so the derived ramp and silence lengths below
    are what the renderer needs to make the measured t_d, t_r and t_s come out exactly.
    """

    fundamental_hz: float
    harmonics: tuple[float, ...]  # relative amplitudes of 2f, 3f, 4f, 5f (fundamental = 1)
    pulse_duration_s: float  # t_d
    rise_fraction: float  # t_r / t_d; the fall time is the same
    pulse_spacing_s: float  # t_s between pulses of a group
    group_pause_s: float | None  # t_s between groups (HIGH: between the 5th and 6th pulse)
    pulse_count: int
    group_sizes: tuple[int, ...]
    repeat_interval_s: float | None  # silence from the end of a burst to the next; None: once

    def __post_init__(self) -> None:
        if self.fundamental_hz <= 0 or any(a < 0 for a in self.harmonics):
            raise ValueError("the fundamental must be > 0 Hz and harmonic amplitudes >= 0")
        if self.pulse_duration_s <= 0 or not 0 < self.rise_fraction <= 0.5:
            raise ValueError("pulse duration must be > 0 and the rise fraction in (0, 0.5]")
        if sum(self.group_sizes) != self.pulse_count or min(self.group_sizes, default=0) < 1:
            raise ValueError("group sizes must be >= 1 and add up to the pulse count")
        if len(self.group_sizes) > 1 and self.group_pause_s is None:
            raise ValueError("more than one group needs a group pause")
        if self.silence_s < 0 or (len(self.group_sizes) > 1 and self.group_silence_s < 0):
            raise ValueError("spacing too short for the ramps: pulses would overlap")
        if self.repeat_interval_s is not None and self.repeat_interval_s <= 0:
            raise ValueError("the repeat interval must be > 0 s or None")

    @property
    def rise_time_s(self) -> float:
        return self.rise_fraction * self.pulse_duration_s

    @property
    def ramp_s(self) -> float:
        """Full length of the raised-cosine ramp (0 -> 100 %) that gives ``rise_time_s``."""
        return self.rise_time_s / _RISE_PER_RAMP

    @property
    def plateau_s(self) -> float:
        return self.pulse_duration_s - 2 * (1 - _U90) * self.ramp_s

    @property
    def envelope_s(self) -> float:
        """Whole pulse, first to last non-zero sample."""
        return self.plateau_s + 2 * self.ramp_s

    @property
    def silence_s(self) -> float:
        """True silence between pulses of a group (t_s minus the ramp parts below 90 %)."""
        return self.pulse_spacing_s - 2 * _U90 * self.ramp_s

    @property
    def group_silence_s(self) -> float:
        return (self.group_pause_s or 0.0) - 2 * _U90 * self.ramp_s

    @property
    def burst_duration_s(self) -> float:
        groups = len(self.group_sizes)
        return (
            self.pulse_count * self.envelope_s
            + (self.pulse_count - groups) * self.silence_s
            + (groups - 1) * self.group_silence_s
        )

    @property
    def cycle_s(self) -> float | None:
        """Burst start to next burst start, or None if the burst is not repeated."""
        if self.repeat_interval_s is None:
            return None
        return self.burst_duration_s + self.repeat_interval_s

    @property
    def partials_hz(self) -> tuple[float, ...]:
        return tuple(self.fundamental_hz * k for k in range(1, len(self.harmonics) + 2))


# Defaults. Shared choices:
# - Harmonics 2f..5f at 0.7/0.5/0.4/0.3 (-3/-6/-8/-10.5 dB): all four inside 300-4000 Hz and
#   within 15 dB of the fundamental (the limit the cited generator takes from Table 4), so the
#   fundamental itself is not needed to count four harmonics in the band.
# - Fundamentals 660/520/400 Hz: inside 150-1000 Hz with 5f <= 3300 Hz (so 5f < 4000 Hz and
#   below Nyquist even at fs = 8 kHz); neighbours differ by > 25 % (about 4 semitones), so the
#   priorities differ in pitch as well as rhythm; the higher pitch goes with the higher urgency.
# - Rise time 15 % of t_d: the middle of 10-20 %, leaving room for sample rounding at 8 kHz.
# - All pulses of a burst at the same level (0 dB difference, limit 10 dB).
# - t_d and t_s are also inside the ranges at the 10 % points: t_d + 2 t_r <= 182 ms < 200 ms,
#   t_s - 2 t_r >= 60 ms > 50 ms (HIGH) and >= 158 ms > 125 ms (MEDIUM/LOW).
_HARMONICS = (0.7, 0.5, 0.4, 0.3)

BURSTS: dict[int, BurstSpec] = {
    # HIGH: 10 pulses as 5 + 5. Short pulses (100 ms of 75-200) and a fast spacing (90 ms of
    # 50-125) sound urgent. Group pause 400 ms: clearly longer than t_s so the grouping is heard
    # (the standard is often quoted as 0.35-1.30 s here [unverified, not in our reference]).
    # Repeated after 6 s of silence: burst about 2.2 s, so the period is about 8.2 s; both the
    # silence and the period are inside 2.5-15 s.
    Priority.HIGH: BurstSpec(
        fundamental_hz=660.0,
        harmonics=_HARMONICS,
        pulse_duration_s=0.100,
        rise_fraction=0.15,
        pulse_spacing_s=0.090,
        group_pause_s=0.400,
        pulse_count=10,
        group_sizes=(5, 5),
        repeat_interval_s=6.0,
    ),
    # MEDIUM: 3 pulses of 140 ms, spacing 200 ms (of 125-250): slower than HIGH. Repeated after
    # 7.5 s of silence (period about 8.4 s); both inside 2.5-30 s.
    Priority.MEDIUM: BurstSpec(
        fundamental_hz=520.0,
        harmonics=_HARMONICS,
        pulse_duration_s=0.140,
        rise_fraction=0.15,
        pulse_spacing_s=0.200,
        group_pause_s=None,
        pulse_count=3,
        group_sizes=(3,),
        repeat_interval_s=7.5,
    ),
    # LOW: 2 pulses of 150 ms, spacing 220 ms (of 125-250), sounded once per condition: the
    # standard allows "not repeated", the visual signal stays, and a KAP patient in a
    # dissociative state should not hear a reminder every 15 s for a minor condition.
    Priority.LOW: BurstSpec(
        fundamental_hz=400.0,
        harmonics=_HARMONICS,
        pulse_duration_s=0.150,
        rise_fraction=0.15,
        pulse_spacing_s=0.220,
        group_pause_s=None,
        pulse_count=2,
        group_sizes=(2,),
        repeat_interval_s=None,
    ),
}


def _check_output(fs: int, volume: float) -> None:
    if int(fs) != fs or fs <= 0:
        raise ValueError(f"fs must be a positive integer, not {fs!r}")
    if not 0 < volume <= 1:
        raise ValueError(f"volume must be in (0, 1], not {volume!r}")


def render_spec(spec: BurstSpec, fs: int = 44100, volume: float = 0.5) -> np.ndarray:
    """One burst of ``spec`` as float32 mono samples whose peak is exactly ``volume``."""
    _check_output(fs, volume)
    if spec.partials_hz[-1] >= fs / 2:
        raise ValueError(f"{spec.partials_hz[-1]:g} Hz partial would alias at fs = {fs} Hz")
    ramp, plateau = spec.ramp_s, spec.plateau_s
    length = plateau + 2 * ramp
    t = np.minimum(np.arange(round(length * fs) + 1) / fs, length)
    # Envelope as a function of time, not of sample counts, so every fs gives the same timing.
    u = np.clip(np.minimum(t, length - t) / ramp, 0.0, 1.0)
    envelope = 0.5 * (1.0 - np.cos(np.pi * u))
    amplitudes = (1.0, *spec.harmonics)
    tone = sum(
        a * np.sin(2 * np.pi * f * t) for a, f in zip(amplitudes, spec.partials_hz, strict=True)
    )
    pulse = envelope * tone  # every pulse starts at phase 0: identical pulses

    starts: list[float] = []
    at = 0.0
    for g, size in enumerate(spec.group_sizes):
        for i in range(size):
            starts.append(at)
            last = g == len(spec.group_sizes) - 1 and i == size - 1
            if not last:
                gap = spec.silence_s if i < size - 1 else spec.group_silence_s
                at += length + gap
    out = np.zeros(round(starts[-1] * fs) + pulse.size)
    for start in starts:
        k = round(start * fs)
        out[k : k + pulse.size] += pulse
    peak = float(np.max(np.abs(out)))
    return (out * (volume / peak)).astype(np.float32)


def render_burst(priority: int, fs: int = 44100, volume: float = 0.5) -> np.ndarray:
    """The burst of ``priority`` (a ``Priority``) as float32 mono samples in -1..1."""
    return render_spec(BURSTS[priority], fs, volume)


def render_cycle(priority: int, fs: int = 44100, volume: float = 0.5) -> np.ndarray:
    """Burst plus its trailing repeat silence, so a player looping it keeps the standard's period.

    A priority that is not repeated gives just the burst.
    """
    spec = BURSTS[priority]
    burst = render_spec(spec, fs, volume)
    if spec.repeat_interval_s is None:
        return burst
    return np.concatenate([burst, np.zeros(round(spec.repeat_interval_s * fs), np.float32)])


def wav_bytes(samples: np.ndarray, fs: int) -> bytes:
    """16-bit PCM mono WAV of float samples in -1..1 (clipped), for QSoundEffect and friends."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("wav_bytes takes mono (1-D) samples")
    _check_output(fs, 1.0)
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(fs))
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def write_wav(path: str | Path, priority: int, fs: int = 44100, volume: float = 0.5) -> Path:
    """Write one burst of ``priority`` as a WAV file: QSoundEffect plays files, not arrays."""
    path = Path(path)
    path.write_bytes(wav_bytes(render_burst(priority, fs, volume), fs))
    return path


# ---------------------------------------------------------------------------------------------
# Analysis


@dataclass(frozen=True)
class PulseMeasure:
    """One pulse's envelope crossings (seconds from the first sample), level and pitch."""

    onset_s: float  # 10 % of the pulse amplitude on the rise
    rise90_s: float
    fall90_s: float
    end_s: float  # 10 % on the fall
    level_db: float  # RMS between the 90 % points, dB re full scale
    fundamental_hz: float

    @property
    def duration_s(self) -> float:
        return self.fall90_s - self.rise90_s

    @property
    def rise_time_s(self) -> float:
        return self.rise90_s - self.onset_s

    @property
    def fall_time_s(self) -> float:
        return self.end_s - self.fall90_s

    @property
    def rise_fraction(self) -> float:
        return self.rise_time_s / self.duration_s


@dataclass(frozen=True)
class BurstAnalysis:
    """What ``analyse_burst`` measured; gaps and durations use the 90 % conventions."""

    fs: float
    pulses: tuple[PulseMeasure, ...]
    fundamental_hz: float  # of the first pulse
    harmonic_levels_db: tuple[float, ...]  # 2f..5f of the first pulse re f, dB; -inf >= fs/2

    @property
    def pulse_count(self) -> int:
        return len(self.pulses)

    @property
    def onsets_s(self) -> list[float]:
        return [p.onset_s for p in self.pulses]

    @property
    def durations_s(self) -> list[float]:
        return [p.duration_s for p in self.pulses]

    @property
    def gaps_s(self) -> list[float]:
        """t_s: 90 % of each fall to 90 % of the next rise."""
        return [b.rise90_s - a.fall90_s for a, b in itertools.pairwise(self.pulses)]

    @property
    def loudness_spread_db(self) -> float:
        levels = [p.level_db for p in self.pulses]
        return max(levels) - min(levels)

    def harmonics_in_band(
        self, low_hz: float = 300.0, high_hz: float = 4000.0, floor_db: float = -15.0
    ) -> int:
        """How many of 2f..5f lie in the band and are no more than ``-floor_db`` below f."""
        return sum(
            1
            for k, level in enumerate(self.harmonic_levels_db, start=2)
            if low_hz <= k * self.fundamental_hz <= high_hz and level >= floor_db
        )


_DETECT = 0.2  # of the loudest pulse: finds pulses up to 14 dB quieter (the limit is 10 dB)
_MIN_PULSE_S = 0.005  # shorter excursions are clicks or noise, not pulses
_SILENT = 1e-7  # RMS re full scale (-140 dB, below 24-bit quantisation): nothing is playing


def _moving_mean(x: np.ndarray, width: float) -> np.ndarray:
    """Centred moving mean over ``width`` samples; fractional widths interpolate the running sum,
    so a window can span exactly whole periods of a tone (and null it and its harmonics).
    """
    n = x.size
    width = min(max(width, 1.0), float(n))
    c = np.concatenate(([0], np.cumsum(x)))
    grid = np.arange(n + 1, dtype=np.float64)
    centre = np.arange(n) + 0.5
    lo = np.clip(centre - width / 2, 0.0, float(n))
    hi = np.clip(centre + width / 2, 0.0, float(n))
    if np.iscomplexobj(c):
        total = (np.interp(hi, grid, c.real) - np.interp(lo, grid, c.real)) + 1j * (
            np.interp(hi, grid, c.imag) - np.interp(lo, grid, c.imag)
        )
    else:
        total = np.interp(hi, grid, c) - np.interp(lo, grid, c)
    # numpy's stubs lose the type through interp and clip: it is an array of ``x``'s kind.
    mean: np.ndarray = total / np.maximum(hi - lo, 1e-9)
    return mean


def _sync_envelope(x: np.ndarray, fs: float, f0: float) -> np.ndarray:
    """Amplitude of the component at ``f0``: mix down, then average twice over whole periods.

    Unlike a moving RMS, this does not weight the ramp by where the waveform's energy sits
    within a period (which shifts crossings by up to half a period), and it rejects DC, the
    harmonics and most of the noise. Averaging twice (a triangular kernel) has double zeros at
    the harmonics, so even on a ramp they leak only in proportion to its curvature.
    """
    width = max(1, round(0.003 * f0)) * fs / f0  # the whole periods nearest to 3 ms
    mixed = x * np.exp(-2j * np.pi * f0 * np.arange(x.size) / fs)
    envelope: np.ndarray = 2 * np.abs(_moving_mean(_moving_mean(mixed, width), width))
    return envelope


def _segments(env: np.ndarray, fs: float) -> list[tuple[int, int]]:
    """Index ranges [start, stop) where the envelope is above the detection threshold."""
    above = env >= _DETECT * env.max()
    edges = np.flatnonzero(np.diff(np.concatenate(([False], above, [False])).astype(np.int8)))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    merged: list[tuple[int, int]] = []
    for start, stop in runs:
        if merged and start - merged[-1][1] < _MIN_PULSE_S * fs:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return [(a, b) for a, b in merged if b - a >= _MIN_PULSE_S * fs]


def _up_crossing(env: np.ndarray, level: float) -> float:
    """Where ``env`` (rising from below ``level`` to above it) crosses ``level``, sub-sample.

    Noise can make it cross several times: take the middle of the first and the last upward
    crossing, so the jitter does not pull the estimate to one side.
    """
    above = env >= level
    if above[0]:
        return 0.0
    first = int(np.argmax(above))
    last = int(np.flatnonzero(~above)[-1])

    def at(i: int) -> float:
        lo, hi = env[i], env[i + 1]
        return i + (level - lo) / (hi - lo) if hi != lo else float(i)

    return 0.5 * (at(first - 1) + at(last))


def _edges(env: np.ndarray, start: int, stop: int) -> tuple[float, float, float, float]:
    """10 % rise, 90 % rise, 90 % fall, 10 % fall (samples) of the pulse inside [start, stop)."""
    seg = env[start:stop]
    top = np.flatnonzero(seg >= 0.95 * seg.max())
    level = float(seg[top].mean())  # the plateau, not its highest ripple
    rise = env[: start + top[0] + 1]
    fall = env[start + top[-1] :][::-1]
    last = env.size - 1
    return (
        _up_crossing(rise, 0.1 * level),
        _up_crossing(rise, 0.9 * level),
        last - _up_crossing(fall, 0.9 * level),
        last - _up_crossing(fall, 0.1 * level),
    )


def _spectrum_db(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Hann-windowed, 8x zero-padded magnitude spectrum in dB, and its FFT length."""
    n = x.size
    nfft = 1 << math.ceil(math.log2(8 * n))
    mag = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(n), nfft))
    return 20 * np.log10(mag + 1e-12 * mag.max() + 1e-300), nfft


def _peak_near(db: np.ndarray, lo: int, hi: int) -> tuple[float, float]:
    """Largest bin in [lo, hi) refined by a parabola through it and its neighbours: (bin, dB)."""
    lo, hi = max(lo, 1), min(hi, db.size - 1)
    k = lo + int(np.argmax(db[lo:hi]))
    a, b, c = db[k - 1], db[k], db[k + 1]
    denom = a - 2 * b + c
    p = 0.5 * (a - c) / denom if denom < 0 else 0.0
    return k + p, b - 0.25 * (a - c) * p


def _fundamental(x: np.ndarray, fs: float) -> tuple[float, tuple[float, ...]]:
    """Fundamental (Hz) and the levels of 2f..5f relative to it (dB)."""
    db, nfft = _spectrum_db(x)
    hz_per_bin = fs / nfft
    top = min(5000.0, 0.48 * fs)
    k_peak, l_peak = _peak_near(db, round(100 / hz_per_bin), round(top / hz_per_bin))
    f0, l0 = k_peak * hz_per_bin, l_peak
    # The strongest partial need not be the fundamental: take the lowest strong subharmonic.
    for d in (5, 4, 3, 2):
        f = k_peak * hz_per_bin / d
        if f < 100:
            continue
        half = 0.03 * f / hz_per_bin
        k, level = _peak_near(db, round(f / hz_per_bin - half), round(f / hz_per_bin + half) + 1)
        if level >= l_peak - 20 and abs(k * hz_per_bin - f) < 0.02 * f:
            f0, l0 = k * hz_per_bin, level
            break
    levels = []
    for h in range(2, 6):
        f = h * f0
        if f >= 0.48 * fs:
            levels.append(-math.inf)
            continue
        half = 0.05 * f / hz_per_bin
        _, level = _peak_near(db, round(f / hz_per_bin - half), round(f / hz_per_bin + half) + 1)
        levels.append(level - l0)
    return f0, tuple(levels)


def analyse_burst(samples: np.ndarray, fs: float) -> BurstAnalysis:
    """Measure a burst: pulses (count, t_d, t_r, t_s, level, pitch), fundamental, harmonics.

    Works on recordings: removes a DC offset, finds pulses on a 10 ms moving-RMS envelope
    (any pitch, pulses down to -14 dB re the loudest), then times each pulse's edges on the
    envelope of its own fundamental, which noise, DC and harmonics barely touch.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1 or x.size < 64:
        raise ValueError("analyse_burst takes mono (1-D) samples, at least 64 of them")
    x = x - x.mean()
    coarse = np.sqrt(np.maximum(_moving_mean(x * x, 0.010 * fs), 0.0))
    segs = _segments(coarse, fs) if coarse.max() > _SILENT else []
    if not segs:
        raise ValueError("no pulse found")
    cuts = [0, *((b + a) // 2 for (_, b), (a, _) in itertools.pairwise(segs)), x.size]
    pulses = []
    spectra = []
    for (a, b), lo, hi in zip(segs, cuts[:-1], cuts[1:], strict=True):
        core = x[a + (b - a) // 4 : b - (b - a) // 4]
        f0, _ = _fundamental(core if core.size >= 32 else x[a:b], fs)
        env = _sync_envelope(x[lo:hi], fs, f0)
        r10, r90, f90, f10 = (lo + e for e in _edges(env, a - lo, b - lo))
        plateau = x[math.ceil(r90) : math.floor(f90) + 1]
        if plateau.size < 32:
            plateau = x[a:b]
        f0, harmonics = _fundamental(plateau, fs)
        rms = float(np.sqrt(np.mean(plateau * plateau)))
        pulses.append(
            PulseMeasure(r10 / fs, r90 / fs, f90 / fs, f10 / fs, 20 * math.log10(rms), f0)
        )
        spectra.append(harmonics)
    return BurstAnalysis(float(fs), tuple(pulses), pulses[0].fundamental_hz, spectra[0])
