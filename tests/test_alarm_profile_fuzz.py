"""Profile fuzzing (issue 11): any profile that loads runs a whole simulated session; a profile
with an infinite, NaN, huge or impossible number is refused with one sentence.

Profiles are kap-default with its numbers replaced by hypothesis: mostly plausible numbers, so
that many load, and now and then inf, nan, huge, negative or out-of-range ones. A loaded profile
runs whole simulated sessions (the simulator's scenarios, played without pacing) through the
engine, with operator actions between, and every log entry must be writable as a JSON line.
"""

from __future__ import annotations

import functools
import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as hs

from alarms.engine import AlarmEngine
from alarms.model import Priority, TechnicalCondition
from alarms.profile import (
    LIMIT_RANGES,
    MAX_DELAY_S,
    NO_DATA_TIMEOUT_RANGE,
    ProfileError,
    parse_profile,
)
from alarms.replay import timeline_record
from devices.base import PlaybackSettings
from devices.sim.driver import SimDriver
from kapmonitor.core import jsonl
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import Item, WaveformBlock
from tests.test_alarm_profile import default_text

SCENARIOS = ("desaturation", "device-unplug", "probe-off", "bradycardia", "cuff-failure")

#: (the text in kap-default, the template with {} for the number, the code it limits or None,
#: and a range of numbers around the valid ones: most load, some just miss).
KEYS = [
    ("medium = 90\nhigh = 85", "medium = {}\nhigh = 85", Code.SPO2, (80, 100)),
    ("medium = 50\nhigh = 40", "medium = 50\nhigh = {}", Code.PULSE_RATE, (20, 60)),
    ("medium = 120\nhigh = 140", "medium = {}\nhigh = 140", Code.PULSE_RATE, (100, 160)),
    ("medium = 160\nhigh = 180", "medium = 160\nhigh = {}", Code.NIBP_SYS, (150, 280)),
    ("hysteresis = 1\n", "hysteresis = {}\n", None, (0, 12)),
    ("delay_s = 10\n", "delay_s = {}\n", None, (0, 40)),
    ('sensor_off = { priority = "medium", delay_s = 10 }',
     'sensor_off = {{ priority = "medium", delay_s = {} }}', None, (0, 40)),
    ('no_data = { priority = "medium", timeout_s = 10 }',
     'no_data = {{ priority = "medium", timeout_s = {} }}', None, (0, 40)),
    ('nibp_overdue = { priority = "low", grace_s = 120 }',
     'nibp_overdue = {{ priority = "low", grace_s = {} }}', None, (0, 400)),
    ("audio_pause_s = 120", "audio_pause_s = {}", None, (30, 200)),
    ("systolic = 40", "systolic = {}", None, (0, 120)),
    ("every_min = 5", "every_min = {}", None, (0, 90)),
]  # fmt: skip

WILD = hs.sampled_from([math.inf, -math.inf, math.nan, 1e12, 1e308, -1.0, -1e12, 1e6])


@hs.composite
def change(draw) -> tuple[int, float]:
    index = draw(hs.sampled_from(range(len(KEYS))))
    low, high = KEYS[index][3]
    near = hs.one_of(hs.integers(low, high).map(float), hs.floats(low, high))
    return index, draw(hs.one_of(near, near, near, WILD))


def toml_number(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


@functools.cache
def session_items(scenario: str) -> tuple[Item, ...]:
    """A whole simulated session, as the simulator publishes it (pleth left out: it never
    alarms, and it would be most of the items)."""
    items: list[Item] = []
    driver = SimDriver(
        DeviceSpec.parse(f"sim:{scenario}"),
        lambda item: None if isinstance(item, WaveformBlock) else items.append(item),
        playback=PlaybackSettings(speed=1e9, seed=11),
    )
    driver.open()
    driver.start()
    assert driver.join(timeout=120)
    return tuple(items)


def run_session(engine: AlarmEngine, items: tuple[Item, ...]) -> None:
    for n, item in enumerate(items):
        engine.process(item)
        if n % 997 == 0:  # now and then, what a nurse does
            engine.pause_audio("nurse", item.stamp)
            for alarm in engine.alarms():
                engine.acknowledge(alarm.id, "nurse", item.stamp)
    last = items[-1].stamp
    engine.tick(last.shifted(3600))
    for entry in engine.log:
        if entry.priority is not None and entry.kind is not None and entry.condition:
            jsonl.dumps(timeline_record(entry))  # no Infinity or NaN in what record writes


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    hs.lists(change(), min_size=1, max_size=4, unique_by=lambda pair: pair[0]),
    hs.sampled_from(SCENARIOS),
)
def test_any_profile_that_loads_runs_a_whole_session_and_wild_numbers_are_refused(
    changes, scenario
):
    text = default_text()
    for index, value in changes:
        old, template, _, _ = KEYS[index]
        text = text.replace(old, template.format(toml_number(value)), 1)
    try:
        profile = parse_profile(text, "fuzz.toml")
    except ProfileError as exc:
        event("refused")
        message = str(exc)
        assert "\n" not in message and message.startswith("alarm profile 'fuzz.toml': ")
        return
    # It loaded: no number in it can switch an alarm off...
    for _, value in changes:
        assert math.isfinite(value)
    for index, value in changes:
        code = KEYS[index][2]
        if code is not None:
            low, high = LIMIT_RANGES[code]
            assert low <= value <= high
    for rule in profile.limits:
        assert 0 <= rule.delay_s <= MAX_DELAY_S and math.isfinite(rule.hysteresis)
    low, high = NO_DATA_TIMEOUT_RANGE
    assert low <= profile.technical[TechnicalCondition.NO_DATA].timeout_s <= high
    event("loaded")
    # ...and a whole session runs through the engine without an exception.
    run_session(AlarmEngine(profile), session_items(scenario))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e400, 1e12, 1e308])
@pytest.mark.parametrize("index", range(len(KEYS)))
def test_every_number_refuses_infinite_nan_and_huge(index, value):
    old, template, _, _ = KEYS[index]
    text = default_text().replace(old, template.format(toml_number(value)), 1)
    with pytest.raises(ProfileError, match=r"^alarm profile 'fuzz.toml': [^\n]+$"):
        parse_profile(text, "fuzz.toml")


def test_the_shipped_profile_runs_every_scenario():
    from alarms.profile import load_profile

    for scenario in SCENARIOS:
        engine = AlarmEngine(load_profile())
        run_session(engine, session_items(scenario))
        assert any(e.priority in (Priority.MEDIUM, Priority.HIGH) for e in engine.log), scenario
