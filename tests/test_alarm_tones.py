"""Alarm sounds: each priority's burst, measured from its samples, keeps IEC 60601-1-8's numbers.

The ranges are those of /work/shared/reference/clinical-and-alarms.md section (b). Durations and
spacings use alarms.tones' 90 % conventions; one test checks them at the 10 % points as well.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import math
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.model import Priority
from alarms.tones import (
    BURSTS,
    BurstAnalysis,
    BurstSpec,
    analyse_burst,
    render_burst,
    render_cycle,
    render_spec,
    wav_bytes,
    write_wav,
)

# The standard's numbers (reference section (b)).
PULSE_COUNTS = {Priority.HIGH: {10}, Priority.MEDIUM: {3}, Priority.LOW: {1, 2}}
SPACING_S = {
    Priority.HIGH: (0.050, 0.125),
    Priority.MEDIUM: (0.125, 0.250),
    Priority.LOW: (0.125, 0.250),
}
REPEAT_S = {Priority.HIGH: (2.5, 15.0), Priority.MEDIUM: (2.5, 30.0)}  # LOW: > 15 s or never
PULSE_DURATION_S = (0.075, 0.200)
RISE_FRACTION = (0.10, 0.20)
FUNDAMENTAL_HZ = (150.0, 1000.0)
HARMONIC_BAND_HZ = (300.0, 4000.0)
MAX_LOUDNESS_SPREAD_DB = 10.0

TIME_TOL_S = 0.002
FREQ_TOL_HZ = 2.0
FS_VALUES = (8000, 16000, 22050, 44100, 48000)


def _inside(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _within_group_gaps(analysis: BurstAnalysis, priority: Priority) -> list[float]:
    """Gaps between pulses of one group: for HIGH all but the one between pulse 5 and 6."""
    gaps = analysis.gaps_s
    return gaps[:4] + gaps[5:] if priority == Priority.HIGH else gaps


def violations(analysis: BurstAnalysis, priority: Priority) -> list[str]:
    """Every way a measured burst breaks the standard's numbers for ``priority``."""
    found = []
    if analysis.pulse_count not in PULSE_COUNTS[priority]:
        found.append(f"pulse count {analysis.pulse_count}")
    for p in analysis.pulses:
        if not _inside(p.duration_s, PULSE_DURATION_S):
            found.append(f"pulse duration {p.duration_s * 1000:.1f} ms")
        if not _inside(p.rise_fraction, RISE_FRACTION):
            found.append(f"rise time {p.rise_fraction:.1%} of the pulse")
    for gap in _within_group_gaps(analysis, priority):
        if not _inside(gap, SPACING_S[priority]):
            found.append(f"pulse spacing {gap * 1000:.1f} ms")
    if priority == Priority.HIGH and analysis.pulse_count == 10:
        others = _within_group_gaps(analysis, priority)
        if analysis.gaps_s[4] < 2 * max(others):
            found.append("no 5 + 5 grouping")
    if not _inside(analysis.fundamental_hz, FUNDAMENTAL_HZ):
        found.append(f"fundamental {analysis.fundamental_hz:.0f} Hz")
    if analysis.harmonics_in_band(*HARMONIC_BAND_HZ, floor_db=-15.0) < 4:
        found.append("fewer than 4 harmonics in 300-4000 Hz")
    if analysis.loudness_spread_db > MAX_LOUDNESS_SPREAD_DB:
        found.append(f"loudness difference {analysis.loudness_spread_db:.1f} dB")
    return found


@pytest.fixture(scope="module", params=list(Priority), ids=lambda p: p.name)
def measured(request: pytest.FixtureRequest) -> tuple[Priority, BurstSpec, BurstAnalysis]:
    priority = request.param
    return priority, BURSTS[priority], analyse_burst(render_burst(priority), 44100)


def test_every_priority_has_a_burst():
    assert set(BURSTS) == set(Priority)


def test_rendered_burst_keeps_the_standards_numbers(measured):
    priority, _, analysis = measured
    assert violations(analysis, priority) == []


@pytest.mark.parametrize("priority", list(Priority), ids=lambda p: p.name)
def test_burst_is_float32_mono_with_its_peak_at_the_volume(priority):
    samples = render_burst(priority, 44100, 0.3)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert float(np.max(np.abs(samples))) == pytest.approx(0.3, rel=1e-6)
    assert samples.size == pytest.approx(BURSTS[priority].burst_duration_s * 44100, abs=2)


def test_pulse_count_and_grouping(measured):
    priority, spec, analysis = measured
    assert analysis.pulse_count == spec.pulse_count
    assert analysis.pulse_count in PULSE_COUNTS[priority]
    for gap in _within_group_gaps(analysis, priority):
        assert gap == pytest.approx(spec.pulse_spacing_s, abs=TIME_TOL_S)
        assert _inside(gap, SPACING_S[priority])
    if priority == Priority.HIGH:
        pause = analysis.gaps_s[4]
        assert pause == pytest.approx(spec.group_pause_s, abs=TIME_TOL_S)
        assert pause > 2 * max(_within_group_gaps(analysis, priority))


def test_pulse_duration_and_rise_time(measured):
    _, spec, analysis = measured
    for pulse in analysis.pulses:
        assert pulse.duration_s == pytest.approx(spec.pulse_duration_s, abs=TIME_TOL_S)
        assert _inside(pulse.duration_s, PULSE_DURATION_S)
        assert pulse.rise_fraction == pytest.approx(spec.rise_fraction, abs=0.01)
        assert _inside(pulse.rise_fraction, RISE_FRACTION)
        assert pulse.fall_time_s == pytest.approx(pulse.rise_time_s, abs=0.0005)


def test_durations_and_spacings_also_fit_when_measured_at_the_10_percent_points(measured):
    """The reference does not say where on the edges t_d and t_s are measured: fit both ways."""
    priority, _, analysis = measured
    for pulse in analysis.pulses:
        assert _inside(pulse.end_s - pulse.onset_s, PULSE_DURATION_S)
    quiet = [b.onset_s - a.end_s for a, b in itertools.pairwise(analysis.pulses)]
    if priority == Priority.HIGH:
        quiet = quiet[:4] + quiet[5:]
    for gap in quiet:
        assert _inside(gap, SPACING_S[priority])


def test_fundamental_and_harmonics(measured):
    _, spec, analysis = measured
    assert analysis.fundamental_hz == pytest.approx(spec.fundamental_hz, abs=FREQ_TOL_HZ)
    assert _inside(analysis.fundamental_hz, FUNDAMENTAL_HZ)
    assert all(
        p.fundamental_hz == pytest.approx(spec.fundamental_hz, abs=FREQ_TOL_HZ)
        for p in analysis.pulses
    )
    expected_db = [20 * math.log10(a) for a in spec.harmonics]
    assert list(analysis.harmonic_levels_db) == pytest.approx(expected_db, abs=0.5)
    assert all(_inside(k * analysis.fundamental_hz, HARMONIC_BAND_HZ) for k in range(2, 6))
    assert analysis.harmonics_in_band(*HARMONIC_BAND_HZ, floor_db=-15.0) >= 4
    assert analysis.harmonics_in_band(*HARMONIC_BAND_HZ, floor_db=-30.0) >= 4


def test_loudness_difference_between_pulses(measured):
    _, _, analysis = measured
    assert analysis.loudness_spread_db <= MAX_LOUDNESS_SPREAD_DB
    assert analysis.loudness_spread_db == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize("priority", list(Priority), ids=lambda p: p.name)
def test_repeat_interval_and_period(priority):
    spec = BURSTS[priority]
    if priority == Priority.LOW:
        assert spec.repeat_interval_s is None or spec.repeat_interval_s > 15.0
    else:
        # Inside the range whether it counts from the burst's end or from its start.
        assert _inside(spec.repeat_interval_s, REPEAT_S[priority])
        assert _inside(spec.cycle_s, REPEAT_S[priority])
    cycle = render_cycle(priority, 8000)
    expected = spec.cycle_s if spec.cycle_s is not None else spec.burst_duration_s
    assert cycle.size == pytest.approx(expected * 8000, abs=2)
    assert np.array_equal(cycle[: render_burst(priority, 8000).size], render_burst(priority, 8000))


def test_priorities_are_told_apart_by_pitch_and_by_rhythm():
    analyses = {p: analyse_burst(render_burst(p), 44100) for p in Priority}
    assert len({a.pulse_count for a in analyses.values()}) == len(Priority)
    pitches = sorted(a.fundamental_hz for a in analyses.values())
    assert all(hi / lo >= 1.2 for lo, hi in itertools.pairwise(pitches))
    # More urgent sounds higher and faster.
    assert (
        analyses[Priority.HIGH].fundamental_hz
        > analyses[Priority.MEDIUM].fundamental_hz
        > analyses[Priority.LOW].fundamental_hz
    )
    assert max(analyses[Priority.HIGH].durations_s) < min(analyses[Priority.MEDIUM].durations_s)


@pytest.mark.parametrize("fs", [8000, 44100])
@pytest.mark.parametrize("priority", list(Priority), ids=lambda p: p.name)
def test_wav_bytes_round_trip_through_the_wave_module(priority, fs):
    samples = render_burst(priority, fs, 0.8)
    data = wav_bytes(samples, fs)
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, fs)
        assert w.getnframes() == samples.size
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.max(np.abs(pcm - np.round(samples.astype(np.float64) * 32767))) <= 1
    decoded = analyse_burst(pcm / 32767.0, fs)
    assert decoded.pulse_count == BURSTS[priority].pulse_count
    assert decoded.fundamental_hz == pytest.approx(BURSTS[priority].fundamental_hz, abs=1)


def test_write_wav_writes_the_burst(tmp_path):
    path = write_wav(tmp_path / "high.wav", Priority.HIGH, 22050, 0.4)
    assert path.read_bytes() == wav_bytes(render_burst(Priority.HIGH, 22050, 0.4), 22050)


def test_wav_bytes_clips_instead_of_wrapping():
    data = wav_bytes(np.array([1.5, -1.5, 0.0]), 8000)
    with wave.open(io.BytesIO(data), "rb") as w:
        pcm = np.frombuffer(w.readframes(3), dtype="<i2")
    assert pcm.tolist() == [32767, -32767, 0]


@pytest.mark.parametrize("fs", [8000, 44100])
@pytest.mark.parametrize("priority", list(Priority), ids=lambda p: p.name)
def test_analysis_survives_noise_and_a_dc_offset(priority, fs):
    """Gaussian noise 40 dB below the peak, an offset of 60 % of it, and offset-only lead-in."""
    spec = BURSTS[priority]
    volume = 0.5
    rng = np.random.default_rng(int(priority) * 100_000 + fs)
    burst = np.concatenate([np.zeros(fs // 4), render_burst(priority, fs, volume)])
    recorded = burst + rng.normal(0.0, volume * 10 ** (-40 / 20), burst.size) + 0.3
    analysis = analyse_burst(recorded, fs)
    assert analysis.pulse_count == spec.pulse_count
    assert analysis.durations_s == pytest.approx(
        [spec.pulse_duration_s] * spec.pulse_count, abs=TIME_TOL_S
    )
    for gap in _within_group_gaps(analysis, priority):
        assert gap == pytest.approx(spec.pulse_spacing_s, abs=TIME_TOL_S)
    ten_percent = math.acos(0.8) / math.pi  # of the raised-cosine ramp
    assert analysis.onsets_s[0] == pytest.approx(0.25 + spec.ramp_s * ten_percent, abs=TIME_TOL_S)
    assert analysis.fundamental_hz == pytest.approx(spec.fundamental_hz, abs=FREQ_TOL_HZ)
    assert violations(analysis, priority) == []


def _scale_pulse(samples: np.ndarray, fs: int, analysis: BurstAnalysis, i: int, db: float):
    """The burst with pulse ``i`` made ``db`` louder (negative: quieter)."""
    out = samples.astype(np.float64)
    p = analysis.pulses[i]
    lo, hi = round((p.onset_s - 0.03) * fs), round((p.end_s + 0.03) * fs)
    out[lo:hi] *= 10 ** (db / 20)
    return out


@pytest.mark.parametrize("db", [-6.0, -12.0])
def test_loudness_difference_is_measured(db):
    samples = render_burst(Priority.MEDIUM, 16000)
    quieter = _scale_pulse(samples, 16000, analyse_burst(samples, 16000), 1, db)
    analysis = analyse_burst(quieter, 16000)
    assert analysis.pulse_count == 3
    assert analysis.loudness_spread_db == pytest.approx(-db, abs=0.3)
    flagged = any(v.startswith("loudness") for v in violations(analysis, Priority.MEDIUM))
    assert flagged == (db < -MAX_LOUDNESS_SPREAD_DB)


@pytest.mark.parametrize(
    ("priority", "change", "complaint"),
    [
        (Priority.MEDIUM, {"rise_fraction": 0.05}, "rise time"),
        (Priority.MEDIUM, {"rise_fraction": 0.30}, "rise time"),
        (Priority.MEDIUM, {"pulse_duration_s": 0.250}, "pulse duration"),
        (Priority.MEDIUM, {"pulse_duration_s": 0.060}, "pulse duration"),
        (Priority.MEDIUM, {"pulse_spacing_s": 0.300}, "pulse spacing"),
        (Priority.HIGH, {"pulse_spacing_s": 0.140}, "pulse spacing"),
        (Priority.MEDIUM, {"pulse_count": 4, "group_sizes": (4,)}, "pulse count"),
        (Priority.HIGH, {"group_pause_s": 0.090}, "no 5 + 5 grouping"),
        (Priority.LOW, {"fundamental_hz": 1100.0}, "fundamental"),
        (Priority.LOW, {"fundamental_hz": 1100.0}, "fewer than 4 harmonics"),
        (Priority.LOW, {"harmonics": (0.7, 0.1, 0.1, 0.1)}, "fewer than 4 harmonics"),
    ],
)
def test_a_burst_outside_the_standard_is_caught(priority, change, complaint):
    """The checks above can fail: a burst made wrong on purpose is flagged by the analysis."""
    spec = dataclasses.replace(BURSTS[priority], **change)
    analysis = analyse_burst(render_spec(spec, 44100), 44100)
    assert any(v.startswith(complaint) for v in violations(analysis, priority))


def test_each_pulse_reports_its_own_pitch():
    """A melody (pulses of different pitches) is timed and pitched pulse by pulse."""
    fs = 22050
    low, high = (
        render_spec(dataclasses.replace(BURSTS[p], pulse_count=1, group_sizes=(1,)), fs)
        for p in (Priority.LOW, Priority.HIGH)
    )
    analysis = analyse_burst(np.concatenate([low, np.zeros(fs // 5), high]), fs)
    assert [p.fundamental_hz for p in analysis.pulses] == pytest.approx([400.0, 660.0], abs=1)
    assert analysis.durations_s == pytest.approx([0.150, 0.100], abs=TIME_TOL_S)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(4410), np.full(4410, 0.2), np.zeros((2, 4410)), np.zeros(10)],
    ids=["silence", "offset only", "stereo", "too short"],
)
def test_analysis_refuses_what_is_not_a_burst(bad):
    with pytest.raises(ValueError):
        analyse_burst(bad, 44100)


@pytest.mark.parametrize(
    ("fs", "volume"), [(44100, 0.0), (44100, 1.5), (0, 0.5), (44100.5, 0.5), (4000, 0.5)]
)
def test_render_refuses_bad_output_settings(fs, volume):
    """fs = 4000 would alias the 5th harmonic of HIGH's 660 Hz."""
    with pytest.raises(ValueError):
        render_burst(Priority.HIGH, fs, volume)


@pytest.mark.parametrize(
    "change",
    [
        {"group_sizes": (5, 4)},
        {"group_pause_s": None},
        {"pulse_spacing_s": 0.020},
        {"rise_fraction": 0.0},
        {"fundamental_hz": 0.0},
        {"repeat_interval_s": 0.0},
    ],
)
def test_burst_spec_refuses_an_impossible_burst(change):
    with pytest.raises(ValueError):
        dataclasses.replace(BURSTS[Priority.HIGH], **change)


@settings(max_examples=40, deadline=None)
@given(
    priority=st.sampled_from(list(Priority)),
    fs=st.sampled_from(FS_VALUES),
    volume=st.floats(min_value=0.05, max_value=1.0, exclude_min=True),
)
def test_any_sample_rate_and_volume_gives_the_same_burst(priority, fs, volume):
    spec = BURSTS[priority]
    samples = render_burst(priority, fs, volume)
    assert samples.dtype == np.float32
    assert float(np.max(np.abs(samples))) == pytest.approx(volume, rel=1e-6)
    assert samples.size == pytest.approx(spec.burst_duration_s * fs, abs=2)
    analysis = analyse_burst(samples, fs)
    assert analysis.pulse_count == spec.pulse_count
    assert analysis.durations_s == pytest.approx(
        [spec.pulse_duration_s] * spec.pulse_count, abs=TIME_TOL_S
    )
    for gap in _within_group_gaps(analysis, priority):
        assert gap == pytest.approx(spec.pulse_spacing_s, abs=TIME_TOL_S)
    assert analysis.fundamental_hz == pytest.approx(spec.fundamental_hz, abs=FREQ_TOL_HZ)
    assert violations(analysis, priority) == []
