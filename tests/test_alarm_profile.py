"""Alarm profiles: kap-default as the issue specifies it, and every error refused in one line
that names the file, the key and the reason.
"""

from __future__ import annotations

import math
from importlib import resources

import pytest

from alarms.model import Priority, TechnicalCondition
from alarms.profile import (
    AUDIO_PAUSE_RANGE,
    Profile,
    ProfileError,
    load_profile,
    parse_profile,
    profile_names,
)
from kapmonitor.core.errors import UserError

HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW
FILE = "clinic-room-2.toml"


def default_text() -> str:
    return (resources.files("alarms") / "profiles" / "kap-default.toml").read_text()


def mutated(*replacements: tuple[str, str]) -> str:
    text = default_text()
    for old, new in replacements:
        assert old in text, f"the mutation no longer applies: {old!r}"
        text = text.replace(old, new, 1)
    return text


# --- kap-default ------------------------------------------------------------------------------


def test_kap_default_ships_and_is_the_default():
    assert "kap-default" in profile_names()
    assert load_profile() == load_profile("kap-default")
    profile = load_profile()
    assert profile.name == "kap-default" and profile.source == "kap-default.toml"


def test_kap_default_behaviour():
    profile = load_profile()
    assert profile.audio_pause_s == 120
    assert profile.latching == {HIGH: True, MEDIUM: False, LOW: False}
    assert AUDIO_PAUSE_RANGE == (60.0, 180.0)


def test_kap_default_baseline_rule():
    rule = load_profile().baseline_rise
    assert rule is not None
    assert (rule.systolic, rule.diastolic, rule.priority) == (40, 25, MEDIUM)


@pytest.mark.parametrize(
    ("name", "priority", "delay", "grace"),
    [
        (TechnicalCondition.SENSOR_OFF, MEDIUM, 10, 0),
        (TechnicalCondition.SIGNAL_QUALITY, LOW, 10, 0),
        (TechnicalCondition.NO_DATA, MEDIUM, 0, 0),
        (TechnicalCondition.DISCONNECTED, MEDIUM, 0, 0),
        (TechnicalCondition.NIBP_FAILED, LOW, 0, 0),
        (TechnicalCondition.RECORDING_FAILING, MEDIUM, 0, 0),
        (TechnicalCondition.NIBP_OVERDUE, LOW, 0, 120),
    ],
)
def test_kap_default_technical_conditions(name, priority, delay, grace):
    rule = load_profile().technical[name]
    assert (rule.priority, rule.delay_s, rule.grace_s) == (priority, delay, grace)


def test_technical_condition_names_stay_as_profiles_and_records_spell_them():
    # Profiles written before key [technical] with underscores; records store hyphens.
    assert {c.profile_key: c.value for c in TechnicalCondition} == {
        "sensor_off": "sensor-off",
        "signal_quality": "signal-quality",
        "no_data": "no-data",
        "disconnected": "disconnected",
        "nibp_failed": "nibp-failed",
        "recording_failing": "recording-failing",
        "nibp_overdue": "nibp-overdue",
        "station_link_lost": "station-link-lost",
        "room_link_lost": "room-link-lost",
        "no_co2_signal": "no-co2-signal",
    }


def test_a_profile_written_before_the_clinic_bus_conditions_still_loads(tmp_path):
    # station_link_lost and room_link_lost came with issue 16: without them, their defaults.
    text = "\n".join(
        line for line in default_text().splitlines() if "_link_lost" not in line.split("=")[0]
    )
    path = tmp_path / "old.toml"
    path.write_text(text)
    technical = load_profile(str(path)).technical
    assert technical[TechnicalCondition.STATION_LINK_LOST].priority.label == "low"
    assert technical[TechnicalCondition.ROOM_LINK_LOST].priority.label == "medium"


def test_kap_default_breathing_rules():
    profile = load_profile()
    rules = {r.id: r for r in profile.limits}
    assert [(r.direction, r.levels, r.delay_s) for r in map(rules.get, BREATHING_LIMITS)] == [
        ("low", ((MEDIUM, 8), (HIGH, 6)), 15),
        ("high", ((MEDIUM, 30),), 15),
        ("high", ((MEDIUM, 50), (HIGH, 60)), 15),
        ("low", ((MEDIUM, 20),), 15),
    ]
    assert profile.apnea is not None and profile.etco2_rise is not None
    assert (profile.apnea.priority, profile.apnea.after_s) == (HIGH, 20)
    rise = profile.etco2_rise
    assert (rise.rise, rise.priority, rise.delay_s) == (10, MEDIUM, 30)
    line = profile.technical[TechnicalCondition.NO_CO2_SIGNAL]
    assert (line.priority, line.delay_s, line.flat_s, line.flat_mmhg) == (MEDIUM, 10, 20, 3)


BREATHING_LIMITS = ("rr-low", "rr-high", "etco2-high", "etco2-low")


def before_breathing() -> str:
    """kap-default as it was before issue 17: no breathing limits, rules or technical line."""
    text = default_text()
    limits = text.index("# Breathing (issue 17)")
    text = text[:limits] + text[text.index("# Rise from the pre-dose baseline") :]
    rules = text.index("# No breath (apnoea)")
    text = text[:rules] + text[text.index("# Technical conditions.") :]
    line = text.index("# The CO2 sampling line off")
    return text[:line] + text[text.index("\n\n", line) :]


def test_a_profile_written_before_breathing_still_loads(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text(before_breathing())
    profile = load_profile(str(path))
    assert not {r.id for r in profile.limits} & set(BREATHING_LIMITS)
    assert profile.apnea is None and profile.etco2_rise is None  # not part of that profile
    default = load_profile().technical[TechnicalCondition.NO_CO2_SIGNAL]
    assert profile.technical[TechnicalCondition.NO_CO2_SIGNAL] == default  # its defaults


def test_kap_default_nibp_schedule():
    # Every 5 minutes to the hour after the dose, every 15 after.
    assert load_profile().nibp_schedule == ((60, 5), (math.inf, 15))


def test_a_profile_file_by_path(tmp_path):
    path = tmp_path / FILE
    path.write_text(mutated(('name = "kap-default"', 'name = "room 2"')))
    profile = load_profile(str(path))
    assert (profile.name, profile.source) == ("room 2", FILE)
    assert profile.limits == load_profile().limits


# --- errors -----------------------------------------------------------------------------------

ERRORS = [
    # unknown keys
    pytest.param(
        [('name = "kap-default"', 'name = "kap-default"\ncolour = "red"')],
        ["the file", "unknown key 'colour'"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        [("audio_pause_s = 120", "audio_pause_s = 120\nvolume = 11")],
        ["[behaviour]", "unknown key 'volume'"],
        id="unknown-behaviour-key",
    ),
    pytest.param(
        [("latching = { high = true,", "latching = { urgent = true, high = true,")],
        ["[behaviour] latching", "unknown key 'urgent'"],
        id="unknown-latching-key",
    ),
    pytest.param(
        [("hysteresis = 1\n", "hysteresis = 1\ndelay = 3\n")],
        ["[[limit]] #1", "unknown key 'delay'"],
        id="unknown-limit-key",
    ),
    pytest.param(
        [("[technical]\n", "[technical]\nsmoke = { priority = \"high\" }\n")],
        ["[technical]", "unknown key 'smoke'"],
        id="unknown-technical-condition",
    ),
    pytest.param(
        [('nibp_failed = { priority = "low" }', 'nibp_failed = { priority = "low", repeat = 2 }')],
        ["[technical] nibp_failed", "unknown key 'repeat'"],
        id="unknown-technical-key",
    ),
    # wrong types
    pytest.param(
        [("audio_pause_s = 120", 'audio_pause_s = "120"')],
        ["[behaviour] audio_pause_s", "must be a number"],
        id="pause-as-text",
    ),
    pytest.param(
        [("audio_pause_s = 120", "audio_pause_s = true")],
        ["[behaviour] audio_pause_s", "must be a number"],
        id="pause-as-bool",
    ),
    pytest.param(
        [("latching = { high = true,", 'latching = { high = "yes",')],
        ["[behaviour] latching high", "must be true or false"],
        id="latching-as-text",
    ),
    pytest.param(
        [("medium = 90\n", 'medium = "90"\n')],
        ["[[limit]] 'spo2-low' medium", "must be a number"],
        id="limit-as-text",
    ),
    pytest.param(
        [("hysteresis = 1\n", "hysteresis = [1]\n")],
        ["[[limit]] 'spo2-low' hysteresis", "must be a number"],
        id="hysteresis-as-list",
    ),
    pytest.param(
        [("hysteresis = 1\n", "hysteresis = -1\n")],
        ["[[limit]] 'spo2-low' hysteresis", "must be at least 0"],
        id="negative-hysteresis",
    ),
    pytest.param(
        [("delay_s = 10\n", "delay_s = -10\n")],
        ["[[limit]] 'spo2-low' delay_s", "must be at least 0"],
        id="negative-delay",
    ),
    pytest.param(
        [('codes = ["MDC_PULS_OXIM_SAT_O2"]', 'codes = "MDC_PULS_OXIM_SAT_O2"')],
        ["[[limit]] 'spo2-low' codes", "must be a list of measurement codes"],
        id="codes-as-text",
    ),
    pytest.param(
        [('direction = "low"', 'direction = "down"')],
        ["[[limit]] 'spo2-low' direction", "must be 'low' or 'high'"],
        id="direction-unknown",
    ),
    pytest.param(
        [('message = "SpO2 low"', "message = 5")],
        ["[[limit]] 'spo2-low' message", "must be a non-empty string"],
        id="message-as-number",
    ),
    pytest.param(
        [('priority = "medium"\n', 'priority = "urgent"\n')],
        ["[baseline_rise] priority", "must be 'low', 'medium' or 'high'"],
        id="priority-unknown",
    ),
    pytest.param(
        [("sensor_off = { priority = \"medium\"", "sensor_off = { priority = 2")],
        ["[technical] sensor_off priority"],
        id="priority-as-number",
    ),
    pytest.param(
        [("systolic = 40", "systolic = 0")],
        ["[baseline_rise] systolic", "must be at least 1"],
        id="baseline-rise-zero",
    ),
    pytest.param(
        [('name = "kap-default"', "name = 5")],
        ["name", "must be a non-empty string"],
        id="name-as-number",
    ),
    pytest.param(
        [("latching = { high = true, medium = false, low = false }", "latching = true")],
        ["[behaviour] latching", "must be a table"],
        id="latching-not-a-table",
    ),
    # level order
    pytest.param(
        [("medium = 90\nhigh = 85", "medium = 85\nhigh = 90")],
        ["[[limit]] 'spo2-low'", "the high limit must lie below the medium limit"],
        id="low-levels-swapped",
    ),
    pytest.param(
        [("medium = 90\nhigh = 85", "medium = 90\nhigh = 90")],
        ["[[limit]] 'spo2-low'", "the high limit must lie below the medium limit"],
        id="levels-equal",
    ),
    pytest.param(
        [("medium = 120\nhigh = 140", "medium = 140\nhigh = 120")],
        ["[[limit]] 'pulse-high'", "the high limit must lie above the medium limit"],
        id="high-levels-swapped",
    ),
    pytest.param(
        [('direction = "low"\nmedium = 90', 'direction = "low"\nlow = 80\nmedium = 90')],
        ["[[limit]] 'spo2-low'", "must lie below"],
        id="low-level-beyond-medium",
    ),
    pytest.param(
        [("medium = 90\nhigh = 85\n", "")],
        ["[[limit]] 'spo2-low'", "needs at least one of"],
        id="no-levels",
    ),
    # audio pause out of 60-180 s
    *(
        pytest.param(
            [("audio_pause_s = 120", f"audio_pause_s = {v}")],
            ["[behaviour] audio_pause_s", "must be 60 to 180 seconds"],
            id=f"pause-{v}",
        )
        for v in (0, 59, 59.9, 180.1, 181, 3600, -120, "inf")
    ),
    # missing entries
    *(
        pytest.param(
            [(line, "")],
            ["[technical]", f"'{line.split()[0]}' is missing"],
            id=f"technical-{line.split()[0]}-missing",
        )
        for line in default_text().split("[technical]\n")[1].splitlines()
        if line.split(" ")[0] in {c.profile_key for c in TechnicalCondition}
        and "_link_lost" not in line.split(" ")[0]  # optional: profiles predate them
        and line.split(" ")[0] != "no_co2_signal"  # so does this one (issue 17)
    ),
    pytest.param(
        [("audio_pause_s = 120", "")],
        ["[behaviour]", "'audio_pause_s' is missing"],
        id="pause-missing",
    ),
    pytest.param(
        [('id = "spo2-low"\n', "")],
        ["[[limit]] #1", "'id' is missing"],
        id="limit-id-missing",
    ),
    pytest.param(
        [('id = "pulse-high"', 'id = "pulse-low"')],
        ["[[limit]] 'pulse-low'", "the id is used twice"],
        id="limit-id-twice",
    ),
    pytest.param(
        [("[nibp_schedule]", "[schedule]")],
        ["the file", "unknown key 'schedule'"],
        id="schedule-renamed",
    ),
    pytest.param(
        [("segments = [{ until_min = 60, every_min = 5 }, { every_min = 15 }]", "segments = []")],
        ["[nibp_schedule] segments", "must be a non-empty list"],
        id="schedule-empty",
    ),
    pytest.param(
        [("{ until_min = 60, every_min = 5 }, { every_min = 15 }",
          "{ every_min = 5 }, { every_min = 15 }")],
        ["[nibp_schedule] segment 1", "only the last segment may leave out 'until_min'"],
        id="schedule-open-segment-first",
    ),
    pytest.param(
        [("{ every_min = 15 }", "{ until_min = 30, every_min = 15 }")],
        ["[nibp_schedule] segment 2 until_min", "must be later than the segment before"],
        id="schedule-going-back",
    ),
    pytest.param(
        [("every_min = 5", "every_min = 0")],
        ["[nibp_schedule] segment 1 every_min", "must be at least 1"],
        id="schedule-every-zero",
    ),
    # unknown measurement codes
    pytest.param(
        [('codes = ["MDC_PULS_OXIM_SAT_O2"]', 'codes = ["MDC_PULS_OXIM_SAT_O3"]')],
        ["[[limit]] 'spo2-low' codes", "unknown measurement code 'MDC_PULS_OXIM_SAT_O3'"],
        id="code-unknown",
    ),
    pytest.param(
        [('codes = ["MDC_PULS_OXIM_PULS_RATE", "MDC_ECG_HEART_RATE"]',
          'codes = ["MDC_PULS_OXIM_PULS_RATE", "HR"]')],
        ["[[limit]] 'pulse-low' codes", "unknown measurement code 'HR'"],
        id="second-code-unknown",
    ),
    pytest.param(
        [('codes = ["MDC_PULS_OXIM_SAT_O2"]', "codes = []")],
        ["[[limit]] 'spo2-low' codes", "must be a list of measurement codes"],
        id="codes-empty",
    ),
    # not TOML at all
    pytest.param(
        [("audio_pause_s = 120", "audio_pause_s = ")],
        ["is not valid TOML", "line 8"],
        id="toml-value-missing",
    ),
    pytest.param(
        [("[behaviour]", "[behaviour")],
        ["is not valid TOML", "line 7"],
        id="toml-bracket-missing",
    ),
    pytest.param(
        [('name = "kap-default"', 'name = "kap-default"\nname = "again"')],
        ["is not valid TOML"],
        id="toml-key-twice",
    ),
]  # fmt: skip


def _check_message(exc: ProfileError, expected: list[str]) -> str:
    message = str(exc)
    assert isinstance(exc, UserError)
    assert "\n" not in message, message  # one line
    assert message.startswith(f"alarm profile '{FILE}'"), message  # names the file
    for part in expected:  # the key and the reason
        assert part in message, message
    return message


@pytest.mark.parametrize(("replacements", "expected"), ERRORS)
def test_a_profile_error_names_the_file_the_key_and_the_reason(replacements, expected):
    with pytest.raises(ProfileError) as info:
        parse_profile(mutated(*replacements), FILE)
    _check_message(info.value, expected)


@pytest.mark.parametrize(("replacements", "expected"), ERRORS[:8])
def test_a_profile_file_with_an_error_is_refused_by_path(tmp_path, replacements, expected):
    path = tmp_path / FILE
    path.write_text(mutated(*replacements))
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    _check_message(info.value, expected)


def test_description_of_the_wrong_type_is_refused():
    with pytest.raises(ProfileError) as info:
        parse_profile(mutated(('description = "KAP', 'description = 5\n# "KAP')), FILE)
    _check_message(info.value, ["description", "must be a string"])


@pytest.mark.parametrize(
    "codes",
    ['[["MDC_PULS_OXIM_SAT_O2"]]', '[{ id = "MDC_PULS_OXIM_SAT_O2" }]'],
    ids=["nested-list", "table"],
)
def test_a_code_that_is_not_a_string_is_refused(codes):
    text = mutated(('codes = ["MDC_PULS_OXIM_SAT_O2"]', f"codes = {codes}"))
    with pytest.raises(ProfileError) as info:
        parse_profile(text, FILE)
    _check_message(info.value, ["[[limit]] 'spo2-low' codes"])


@pytest.mark.parametrize("pause", [60, 60.0, 90, 179.5, 180])
def test_audio_pause_from_1_to_3_minutes_is_accepted(pause):
    profile = parse_profile(mutated(("audio_pause_s = 120", f"audio_pause_s = {pause}")), FILE)
    assert profile.audio_pause_s == pause


@pytest.mark.parametrize(
    ("latching", "expected"),
    [
        ("{ high = true, medium = true, low = false }", {HIGH: True, MEDIUM: True, LOW: False}),
        ("{ medium = true }", {HIGH: False, MEDIUM: True, LOW: False}),
        ("{}", {HIGH: False, MEDIUM: False, LOW: False}),
    ],
)
def test_latching_per_priority(latching, expected):
    text = mutated(
        ("latching = { high = true, medium = false, low = false }", f"latching = {latching}")
    )
    assert parse_profile(text, FILE).latching == expected


def test_an_unknown_profile_name_lists_the_ones_there_are():
    with pytest.raises(ProfileError) as info:
        load_profile("kap-strict")
    message = str(info.value)
    assert message.startswith("unknown alarm profile 'kap-strict' (available: ")
    assert "kap-default" in message and "\n" not in message


def test_a_profile_file_that_is_not_there(tmp_path):
    path = tmp_path / "gone.toml"
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "gone.toml" in message and "cannot be read" in message and "\n" not in message


def test_a_profile_that_is_not_utf8_is_still_one_clear_error(tmp_path):
    path = tmp_path / FILE
    path.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert str(info.value).startswith(f"alarm profile '{FILE}'")


# --- changing one limit -------------------------------------------------------------------------


def test_with_limit_changes_one_level_only():
    profile = load_profile()
    changed = profile.with_limit("spo2-low", MEDIUM, 92)
    assert dict(changed.limit_rule("spo2-low").levels) == {MEDIUM: 92, HIGH: 85}
    assert dict(profile.limit_rule("spo2-low").levels) == {MEDIUM: 90, HIGH: 85}  # a copy
    assert [r for r in changed.limits if r.id != "spo2-low"] == [
        r for r in profile.limits if r.id != "spo2-low"
    ]
    assert isinstance(changed, Profile)


@pytest.mark.parametrize(
    ("rule_id", "priority", "limit", "reason"),
    [
        ("spo2-low", MEDIUM, 80, "must lie below"),
        ("pulse-high", HIGH, 100, "must lie above"),
        ("spo2-low", LOW, 95, "has no low level"),
        ("fico2-high", MEDIUM, 5, "has no limit 'fico2-high'"),
    ],
)
def test_with_limit_refuses_what_a_file_could_not_say(rule_id, priority, limit, reason):
    with pytest.raises(ProfileError, match=reason) as info:
        load_profile().with_limit(rule_id, priority, limit)
    assert "\n" not in str(info.value)


def test_nan_is_not_a_number_for_the_pause():
    text = mutated(("audio_pause_s = 120", "audio_pause_s = nan"))
    with pytest.raises(ProfileError, match="audio_pause_s: must be a number"):
        parse_profile(text, FILE)


# --- profiles that would switch alarms off (issue 11) -------------------------------------------

SPO2_LEVELS = "medium = 90\nhigh = 85"
PULSE_LOW_LEVELS = "medium = 50\nhigh = 40"
NO_DATA = 'no_data = { priority = "medium", timeout_s = 10 }'

SWITCHED_OFF = [
    # not finite
    pytest.param([(SPO2_LEVELS, "medium = inf\nhigh = 85")], ["'spo2-low' medium", "finite"],
                 id="medium-inf"),
    pytest.param([(SPO2_LEVELS, "medium = 90\nhigh = -inf")], ["'spo2-low' high", "finite"],
                 id="high-minus-inf"),
    pytest.param([(SPO2_LEVELS, "medium = nan\nhigh = 85")], ["'spo2-low' medium", "a number"],
                 id="medium-nan"),
    pytest.param([("delay_s = 10\n", "delay_s = inf\n")], ["'spo2-low' delay_s", "finite"],
                 id="delay-inf"),
    pytest.param([("hysteresis = 1\n", "hysteresis = inf\n")],
                 ["'spo2-low' hysteresis", "finite"], id="hysteresis-inf"),
    pytest.param([('sensor_off = { priority = "medium", delay_s = 10 }',
                   'sensor_off = { priority = "medium", delay_s = inf }')],
                 ["[technical] sensor_off delay_s", "finite"], id="technical-delay-inf"),
    pytest.param([("{ every_min = 15 }", "{ until_min = inf, every_min = 15 }")],
                 ["segment 2 until_min", "finite"], id="schedule-until-inf"),
    # delays too long to be an alarm
    pytest.param([("delay_s = 10\n", "delay_s = 1e12\n")],
                 ["'spo2-low' delay_s", "at most 30", "hides the condition"], id="delay-huge"),
    pytest.param([("delay_s = 10\n", "delay_s = 31\n")], ["'spo2-low' delay_s", "at most 30"],
                 id="delay-31"),
    pytest.param([('signal_quality = { priority = "low", delay_s = 10 }',
                   'signal_quality = { priority = "low", delay_s = 1e12 }')],
                 ["[technical] signal_quality delay_s", "at most 30"], id="technical-delay-huge"),
    pytest.param([('nibp_overdue = { priority = "low", grace_s = 120 }',
                   'nibp_overdue = { priority = "low", grace_s = 1e9 }')],
                 ["[technical] nibp_overdue grace_s", "at most 300"], id="grace-huge"),
    pytest.param([(NO_DATA, 'no_data = { priority = "medium", timeout_s = 3600 }')],
                 ["[technical] no_data timeout_s", "at most 30"], id="no-data-timeout-huge"),
    pytest.param([(NO_DATA, 'no_data = { priority = "medium", timeout_s = 0 }')],
                 ["[technical] no_data timeout_s", "at least 2"], id="no-data-timeout-zero"),
    pytest.param([(NO_DATA, 'no_data = { priority = "medium", timeout_s = inf }')],
                 ["[technical] no_data timeout_s", "finite"], id="no-data-timeout-inf"),
    pytest.param([('disconnected = { priority = "medium" }',
                   'disconnected = { priority = "medium", timeout_s = 5 }')],
                 ["[technical] disconnected", "unknown key 'timeout_s'"], id="timeout-elsewhere"),
    pytest.param([("every_min = 5", "every_min = 1e9")],
                 ["segment 1 every_min", "at most 60"], id="schedule-every-huge"),
    pytest.param([("systolic = 40", "systolic = 1e9")],
                 ["[baseline_rise] systolic", "at most 100"], id="baseline-rise-huge"),
    # limits no patient reaches
    pytest.param([(SPO2_LEVELS, "medium = 9\nhigh = 8")],
                 ["'spo2-low' medium", "9 is outside 50 to 100 % for SpO2"], id="spo2-9-8"),
    pytest.param([(SPO2_LEVELS, "medium = 150\nhigh = 140")],
                 ["'spo2-low' medium", "150 is outside 50 to 100"], id="spo2-150-140"),
    pytest.param([(PULSE_LOW_LEVELS, "medium = 50\nhigh = -40")],
                 ["'pulse-low' high", "outside 25 to 250 /min"], id="pulse-negative"),
    pytest.param([("medium = 160\nhigh = 180", "medium = 160\nhigh = 1e6")],
                 ["'nibp-sys-high' high", "outside 40 to 260 mm[Hg]"], id="nibp-huge"),
    # levels and rules in an order that cannot alarm
    pytest.param([(PULSE_LOW_LEVELS, "medium = 130\nhigh = 40")],
                 ["'pulse-low' medium", "130 must lie below the medium limit 120 of 'pulse-high'"],
                 id="pulse-low-above-pulse-high"),
    pytest.param([("medium = 90\nhigh = 80", "medium = 170\nhigh = 80")],
                 ["'nibp-sys-low' medium", "must lie below the medium limit 160"],
                 id="nibp-low-above-high"),
    # hysteresis that never lets a condition end
    pytest.param([("hysteresis = 1\n", "hysteresis = 10\n")],
                 ["'spo2-low' hysteresis", "at 100 %", "cannot reach"], id="spo2-hysteresis-10"),
    pytest.param([("hysteresis = 2\n", "hysteresis = 80\n")],
                 ["'pulse-low' hysteresis", "beyond the opposite limit 120"],
                 id="pulse-hysteresis-past-the-high-limit"),
    # the core vital signs
    pytest.param([('codes = ["MDC_PULS_OXIM_SAT_O2"]', 'codes = ["MDC_PULS_OXIM_PERF_REL"]'),
                  (SPO2_LEVELS, "medium = 0.5\nhigh = 0.3")],
                 ["[[limit]]", "no rule for SpO2 low (MDC_PULS_OXIM_SAT_O2)"], id="no-spo2-rule"),
    pytest.param([('codes = ["MDC_PULS_OXIM_PULS_RATE", "MDC_ECG_HEART_RATE"]\ndirection = "high"',
                   'codes = ["MDC_PULS_OXIM_PULS_RATE"]\ndirection = "high"')],
                 ["no rule for heart rate high"], id="no-heart-rate-high"),
    pytest.param([('direction = "low"\nmedium = 90\nhigh = 80', 'direction = "high"\nmedium = 200'
                   '\nhigh = 220')], ["no rule for NIBP systolic low"], id="no-nibp-sys-low"),
    # breathing (issue 17)
    pytest.param([("medium = 8\nhigh = 6", "medium = 8\nhigh = 0")],
                 ["'rr-low' high", "0 is outside 2 to 60 /min for RR"], id="rr-low-0"),
    pytest.param([("medium = 30\n", "medium = 1000\n")],
                 ["'rr-high' medium", "1000 is outside 2 to 60"], id="rr-high-huge"),
    pytest.param([("medium = 50\nhigh = 60", "medium = 50\nhigh = 500")],
                 ["'etco2-high' high", "500 is outside 10 to 100 mm[Hg] for EtCO2"],
                 id="etco2-high-500"),
    pytest.param([("medium = 20\n", "medium = 0\n")],
                 ["'etco2-low' medium", "0 is outside 10 to 100"], id="etco2-low-0"),
    pytest.param([("after_s = 20", "after_s = 600")],
                 ["[apnea] after_s", "at most 30 s", "hypoxaemic"], id="apnea-600-s"),
    pytest.param([("after_s = 20", "after_s = 0")], ["[apnea] after_s", "at least 10"],
                 id="apnea-0-s"),
    pytest.param([("after_s = 20", "after_s = inf")], ["[apnea] after_s", "finite"],
                 id="apnea-inf"),
    pytest.param([('[apnea]\npriority = "high"', '[apnea]\npriority = "low"')],
                 ["[apnea] priority", "must be 'medium' or 'high'"], id="apnea-low-priority"),
    pytest.param([("after_s = 20\n", "")], ["[apnea]", "'after_s' is missing"],
                 id="apnea-time-missing"),
    pytest.param([("rise = 10", "rise = 0")], ["[etco2_rise] rise", "at least 3"],
                 id="etco2-rise-0"),
    pytest.param([("rise = 10", "rise = 1e9")], ["[etco2_rise] rise", "at most 30"],
                 id="etco2-rise-huge"),
    pytest.param([("delay_s = 30\n", "delay_s = 600\n")],
                 ["[etco2_rise] delay_s", "at most 30"], id="etco2-rise-delay-600"),
    pytest.param([("flat_mmhg = 3", "flat_mmhg = 0")],
                 ["[technical] no_co2_signal flat_mmhg", "at least 0.5"], id="flat-mmhg-0"),
    pytest.param([("flat_mmhg = 3", "flat_mmhg = 50")],
                 ["[technical] no_co2_signal flat_mmhg", "at most 10"], id="flat-mmhg-50"),
    pytest.param([("flat_s = 20", "flat_s = 600")],
                 ["[technical] no_co2_signal flat_s", "at most 30"], id="flat-600-s"),
    pytest.param([("flat_s = 20, ", "")],
                 ["[technical] no_co2_signal", "'flat_s' is missing"], id="flat-s-missing"),
    pytest.param([('no_co2_signal = { priority = "medium", delay_s = 10',
                   'no_co2_signal = { priority = "medium", delay_s = inf')],
                 ["[technical] no_co2_signal delay_s", "finite"], id="no-co2-delay-inf"),
]  # fmt: skip


@pytest.mark.parametrize(("replacements", "expected"), SWITCHED_OFF)
def test_a_profile_that_would_switch_an_alarm_off_is_refused(replacements, expected):
    with pytest.raises(ProfileError) as info:
        parse_profile(mutated(*replacements), FILE)
    _check_message(info.value, expected)


@pytest.mark.parametrize(
    ("rule_id", "priority", "limit", "reason"),
    [
        ("spo2-low", MEDIUM, math.inf, "outside 50 to 100"),
        ("spo2-low", HIGH, 8, "outside 50 to 100"),
        ("pulse-low", MEDIUM, 130, "must lie below the medium limit 120 of 'pulse-high'"),
        ("pulse-high", MEDIUM, 45, "must lie below the medium limit 45 of 'pulse-high'"),
    ],
)
def test_a_limit_changed_in_a_session_is_checked_like_the_file(rule_id, priority, limit, reason):
    with pytest.raises(ProfileError, match=reason):
        load_profile().with_limit(rule_id, priority, limit)


def test_the_limit_ranges_lie_inside_the_physical_ranges():
    from alarms.profile import LIMIT_RANGES

    for code, (low, high) in LIMIT_RANGES.items():
        floor, ceiling = code.physical_range
        assert floor <= low < high <= ceiling, code


def test_the_no_data_timeout_defaults_to_the_drivers():
    from devices.base import DEFAULT_NO_DATA_TIMEOUT

    assert (
        load_profile().technical[TechnicalCondition.NO_DATA].timeout_s
        == DEFAULT_NO_DATA_TIMEOUT
        == 10
    )
    left_out = parse_profile(mutated((NO_DATA, 'no_data = { priority = "medium" }')), FILE)
    assert left_out.technical[TechnicalCondition.NO_DATA].timeout_s == DEFAULT_NO_DATA_TIMEOUT


def test_record_refuses_an_infinite_limit_before_monitoring_starts(tmp_path):
    # It used to be accepted, and the first alarm's line ({"limit": Infinity}) is not JSON:
    # jsonl.dumps raised in record's writer and monitoring stopped with a traceback.
    import subprocess
    import sys

    from tests.conftest import ROOT

    profile = tmp_path / "inf.toml"
    profile.write_text(mutated((SPO2_LEVELS, "medium = inf\nhigh = 85")))
    proc = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "record", "--device", "sim:desaturation",
         "--speed", "600", "--duration", "40m", "--profile", str(profile),
         "--db", f"sqlite:///{tmp_path / 'k.sqlite3'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "kapmonitor: alarm profile 'inf.toml': [[limit]] 'spo2-low' medium: must be a finite number"
    ]
