"""``kapmonitor alarms replay``: measurement JSON lines in, the alarm timeline out.

End to end through a subprocess with files written in tmp_path; time comes from the input only,
so the same input gives the same output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alarms.engine import AlarmEngine
from alarms.profile import load_profile
from alarms.replay import ReplayError, read_items, timeline
from kapmonitor.cli import EXIT_USER_ERROR, main
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    ConnectionState,
    DeviceEvent,
    Flag,
    NibpReading,
    Numeric,
    SessionEvent,
    SessionEventKind,
    Stamp,
)
from tests.conftest import ROOT

SPO2, PR = Code.SPO2.value, Code.PULSE_RATE.value
SYS, DIA, MEAN = Code.NIBP_SYS.value, Code.NIBP_DIA.value, Code.NIBP_MEAN.value
FIELDS = ["t", "condition", "code", "priority", "kind", "state", "value", "limit", "device"]


def m(t: float, code: str, value, flags=(), device: str | None = None) -> dict:
    """A measurement line as ``kapmonitor decode`` writes it."""
    unit = Code(code).unit
    line = {"t": t, "code": code, "value": value, "unit": unit, "flags": sorted(flags)}
    if device is not None:
        line["device"] = device
    return line


def nibp(t: float, sys_, dia, mean, device: str | None = None, flags=()) -> list[dict]:
    return [m(t, c, v, flags, device) for c, v in ((SYS, sys_), (DIA, dia), (MEAN, mean))]


def write(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kapmonitor", "alarms", "replay", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def records(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [json.loads(line) for line in proc.stdout.splitlines()]


def rec(t, condition, code, priority, kind, state, value, limit, device) -> dict:
    return dict(
        zip(FIELDS, (t, condition, code, priority, kind, state, value, limit, device), strict=True)
    )


# A short session: pre-dose NIBP, the dose, an SpO2 dip, a pulse drop, a rise from the baseline,
# an oximeter unplugged and plugged back, and a missed scheduled NIBP reading.
SESSION = [
    *nibp(0, 100, 60, 73, device="cuff"),
    *nibp(120, 120, 80, 93, device="cuff"),  # baseline 110/70
    {"t": 60.5, "device": "cuff"},  # time only (earlier than now: ignored)
    {"t": 180, "event": "dose", "text": "esketamine 56 mg"},
    *[m(200 + k, SPO2, 89, device="ox") for k in range(11)],  # 200-210: medium after 10 s
    m(211, SPO2, 90, device="ox"),  # within the hysteresis
    m(212, SPO2, 91, device="ox"),  # ends
    *[m(220 + k, PR, 38, device="ox") for k in range(6)],  # high and medium at 225
    m(226, PR, 60, device="ox"),
    m(227, SPO2, None, ["sensor-off"], device="ox"),  # less than 10 s: nothing
    m(230, SPO2, 97, device="ox"),
    *nibp(480, 150, 94, 113, device="cuff"),  # +40 / +24 from 110/70
    {"t": 500, "device": "ox", "state": "disconnected", "detail": "unplugged"},
    {"t": 503, "device": "ox", "state": "reconnecting", "detail": ""},
    {"t": 530, "device": "ox", "state": "connected", "detail": ""},
    {"t": 180 + 10 * 60 + 119},  # the 10-minute reading, 119 s late: not yet overdue
    {"t": 180 + 10 * 60 + 120},  # overdue now
    {"t": 900, "code": "MDC_PULS_OXIM_PLETH", "fs": 75, "samples": [1, 2], "flags": []},
    {"t": 901, "code": "MASIMO_SPCO", "value": 3},  # a code with no rule
    {"t": 902, "event": "marker", "text": "music on"},
]

EXPECTED = [
    rec(210.0, "spo2-low", SPO2, "medium", "physiological", "active", 89, 90.0, "ox"),
    rec(212.0, "spo2-low", SPO2, "medium", "physiological", "inactive", 89, 90.0, "ox"),
    rec(225.0, "pulse-low", PR, "medium", "physiological", "active", 38, 50.0, "ox"),
    rec(225.0, "pulse-low", PR, "high", "physiological", "active", 38, 40.0, "ox"),
    rec(226.0, "pulse-low", PR, "medium", "physiological", "inactive", 38, 50.0, "ox"),
    rec(226.0, "pulse-low", PR, "high", "physiological", "inactive", 38, 40.0, "ox"),
    # The oximeter falls silent after 230: no data from 240 until it is shown disconnected.
    rec(240.0, "no-data", None, "medium", "technical", "active", None, None, "ox"),
    rec(480.0, "bp-rise-systolic", SYS, "medium", "physiological", "active", 40.0, 40.0, "cuff"),
    rec(500.0, "disconnected", None, "medium", "technical", "active", None, None, "ox"),
    rec(500.0, "no-data", None, "medium", "technical", "inactive", None, None, "ox"),
    rec(530.0, "disconnected", None, "medium", "technical", "inactive", None, None, "ox"),
    # Connected again, but no measurement comes: no data 10 s after the connection.
    rec(540.0, "no-data", None, "medium", "technical", "active", None, None, "ox"),
    rec(900.0, "nibp-overdue", None, "low", "technical", "active", None, None, "session"),
]


@pytest.fixture
def session_file(tmp_path) -> Path:
    return write(tmp_path / "session.jsonl", SESSION)


def test_replay_end_to_end(session_file):
    out = records(run("--in", str(session_file)))
    assert all(list(r) == FIELDS for r in out)
    assert out == EXPECTED


def test_the_same_input_gives_the_same_output(session_file):
    first, second = run("--in", str(session_file)), run("--in", str(session_file))
    assert first.returncode == second.returncode == 0
    assert first.stdout and first.stdout == second.stdout


def test_time_comes_from_the_input_only(tmp_path):
    # The same session shifted by a day of monotonic seconds gives the same timeline, shifted.
    day = 86_400
    shifted = [{**x, "t": x["t"] + day} for x in SESSION]
    out = records(run("--in", str(write(tmp_path / "late.jsonl", shifted))))
    assert out == [{**r, "t": r["t"] + day} for r in EXPECTED]


def test_standard_input(session_file):
    out = records(run("--in", "-", stdin=session_file.read_text()))
    assert out == EXPECTED


def test_in_process_and_subprocess_agree(session_file, capsys):
    assert main(["alarms", "replay", "--in", str(session_file)]) == 0
    assert capsys.readouterr().out == run("--in", str(session_file)).stdout


@pytest.mark.parametrize("profile", ["kap-default", "KAP_DEFAULT_PATH"])
def test_profile_by_name_or_path(session_file, tmp_path, profile):
    if profile == "KAP_DEFAULT_PATH":
        profile = str(ROOT / "alarms" / "profiles" / "kap-default.toml")
    assert records(run("--in", str(session_file), "--profile", profile)) == EXPECTED


def test_a_profile_of_ones_own_changes_the_timeline(tmp_path):
    text = (ROOT / "alarms" / "profiles" / "kap-default.toml").read_text()
    text = text.replace("medium = 90\nhigh = 85", "medium = 92\nhigh = 85", 1)
    text = text.replace("latching = { high = true, medium = false", "latching = { high = true, "
                        "medium = true", 1)  # fmt: skip
    profile = write(tmp_path / "room2.toml", [text.rstrip("\n")])
    data = write(tmp_path / "in.jsonl", [m(k, SPO2, 91) for k in range(11)] + [m(11, SPO2, 97)])
    assert records(run("--in", str(data), "--profile", str(profile))) == [
        rec(10.0, "spo2-low", SPO2, "medium", "physiological", "active", 91, 92.0, "input"),
        rec(11.0, "spo2-low", SPO2, "medium", "physiological", "inactive", 91, 92.0, "input"),
    ]
    assert records(run("--in", str(data))) == []


# --- bad input: one line, exit 2, no traceback ----------------------------------------------------

BAD_LINES = [
    pytest.param("{not json", "is not JSON", id="not-json"),
    pytest.param('{"t": 3', "is not JSON", id="truncated"),
    pytest.param(json.dumps({"code": SPO2, "value": 97}), 'needs a finite number "t"', id="no-t"),
    pytest.param(json.dumps({"t": "5", "code": SPO2, "value": 97}), "has no time", id="t-text"),
    pytest.param(json.dumps({"t": None}), "has no time", id="t-null"),
    pytest.param("[1, 2]", "has no time", id="array"),
    pytest.param("42", "has no time", id="number"),
    pytest.param(json.dumps(m(3, SPO2, "97")), '"value" must be a number or null', id="value-text"),
    pytest.param(json.dumps(m(3, SPO2, True)), '"value" must be a number or null', id="value-bool"),
    pytest.param(json.dumps(m(3, SYS, "high")), '"value" must be a number', id="nibp-value-text"),
    pytest.param(json.dumps(m(3, SPO2, 97, ["sensor-of"])), "unknown flag", id="flag-unknown"),
    pytest.param(
        json.dumps({**m(3, SPO2, 97), "flags": "sensor-off"}), "unknown flag", id="flags-text"
    ),
    pytest.param(
        json.dumps({**m(3, SPO2, 97), "flags": [["sensor-off"]]}), "unknown flag", id="flag-list"
    ),
    pytest.param(
        json.dumps({"t": 3, "state": "asleep"}), "unknown device state 'asleep'", id="state"
    ),
    pytest.param('{"t": NaN}', '"t"', id="t-nan"),
    pytest.param('{"t": Infinity}', '"t"', id="t-infinity"),
    pytest.param('{"t": true}', '"t"', id="t-bool"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_a_bad_input_line_is_one_line_exit_2_and_no_traceback(tmp_path, bad, reason):
    path = write(tmp_path / "bad.jsonl", [m(0, SPO2, 97), "", bad, m(60, SPO2, 97)])
    proc = run("--in", str(path))
    assert proc.returncode == EXIT_USER_ERROR, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"kapmonitor: {path} line 3")  # the file and the line
    assert reason in lines[0]


def test_bad_input_on_standard_input_names_it():
    proc = run("--in", "-", stdin='{"t": 0}\nnonsense\n')
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.splitlines() == [
        "kapmonitor: standard input line 2 is not JSON: Expecting value"
    ]


def test_an_input_file_that_is_not_there(tmp_path):
    proc = run("--in", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.splitlines() == [
        f"kapmonitor: cannot read '{tmp_path / 'missing.jsonl'}': No such file or directory"
    ]


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("audio_pause_s = 120", "audio_pause_s = 600", "[behaviour] audio_pause_s"),
        ('codes = ["MDC_PULS_OXIM_SAT_O2"]', 'codes = ["SPO2"]', "[[limit]] 'spo2-low' codes"),
        ("hysteresis = 1\n", "hysteresis = 1\nhysterisis = 1\n", "unknown key 'hysterisis'"),
        ("[technical]", "[technicals]", "unknown key 'technicals'"),
    ],
)
def test_a_broken_profile_stops_the_replay_before_any_alarm(session_file, tmp_path, old, new, key):
    text = (ROOT / "alarms" / "profiles" / "kap-default.toml").read_text()
    assert old in text
    profile = tmp_path / "broken.toml"
    profile.write_text(text.replace(old, new, 1))
    proc = run("--in", str(session_file), "--profile", str(profile))
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stdout == ""  # the engine never ran without (valid) limits
    (line,) = proc.stderr.splitlines()
    assert line.startswith("kapmonitor: alarm profile 'broken.toml'") and key in line


def test_an_unknown_profile_name(session_file):
    proc = run("--in", str(session_file), "--profile", "kap-nope")
    assert proc.returncode == EXIT_USER_ERROR and proc.stdout == ""
    assert proc.stderr.startswith("kapmonitor: unknown alarm profile 'kap-nope' (available:")


# --- the reader -----------------------------------------------------------------------------------


def test_read_items_joins_the_three_nibp_lines_of_one_reading():
    lines = [json.dumps(x) for x in [*nibp(5, 120, 80, 93), *nibp(5, 130, 85, 100, device="b")]]
    assert list(read_items(lines)) == [
        NibpReading("input", 120, 80, 93, Stamp(5, 5)),
        NibpReading("b", 130, 85, 100, Stamp(5, 5)),
    ]


def test_read_items_keeps_flags_and_missing_parts_of_a_reading():
    lines = [
        json.dumps(m(7, SYS, None, ["measurement-failed"])),
        json.dumps(m(7, DIA, None, ["measurement-failed"])),
        json.dumps(m(8, SYS, 120)),
    ]
    assert list(read_items(lines)) == [
        NibpReading("input", None, None, None, Stamp(7, 7), frozenset({Flag.MEASUREMENT_FAILED})),
        NibpReading("input", 120, None, None, Stamp(8, 8)),
    ]


def test_read_items_turns_each_kind_of_line_into_its_item():
    lines = [
        json.dumps(m(1, SPO2, 97, ["low-perfusion"], device="ox")),
        json.dumps({"t": 2, "event": "dose"}),
        json.dumps({"t": 3, "device": "ox", "state": "no-data", "detail": "quiet"}),
        json.dumps({"t": 4}),
        json.dumps({"t": 5, "device": "ox"}),
        "",
        "   ",
        json.dumps({"t": 6, "code": "MDC_PULS_OXIM_PLETH", "fs": 75, "samples": [1]}),
        json.dumps({"t": 7, "event": "marker"}),
    ]
    assert list(read_items(lines)) == [
        Numeric("ox", Code.SPO2, 97, Stamp(1, 1), frozenset({Flag.LOW_PERFUSION})),
        # A line with no device belongs to the only device named so far (record's own output).
        SessionEvent("ox", SessionEventKind.DOSE, Stamp(2, 2)),
        DeviceEvent("ox", ConnectionState.NO_DATA, Stamp(3, 3), "quiet"),
        Stamp(4, 4),
        Stamp(5, 5),
    ]


def test_read_items_names_the_line():
    with pytest.raises(ReplayError, match=r"^in\.jsonl line 2 is not JSON"):
        list(read_items(['{"t": 0}', "{"], "in.jsonl"))


def test_timeline_missing_values_never_alarm():
    lines = [json.dumps(m(t, code, None)) for t in range(120) for code in (SPO2, PR)]
    lines += [json.dumps(x) for x in nibp(119.5, None, None, None)]
    out = list(timeline(AlarmEngine(load_profile()), read_items(lines)))
    # No SpO2 0 or pulse 0: only the NIBP with nothing measured, which is technical.
    assert [(r["condition"], r["kind"]) for r in out] == [("nibp-failed", "technical")]


# --- issue 11: record's own output, time going back, values that are not numbers ------------------

UNREADABLE = [
    pytest.param(b'{"t": 3, "code": "%s", "value": Infinity}' % SPO2.encode(), id="value-inf"),
    pytest.param(b'{"t": 3, "code": "%s", "value": -Infinity}' % SPO2.encode(), id="value-minf"),
    pytest.param(b'{"t": 3, "code": "%s", "value": NaN}' % SPO2.encode(), id="value-nan"),
    pytest.param(b'{"t": 3, "code": "%s", "value": 1e400}' % SPO2.encode(), id="value-1e400"),
    pytest.param(b'{"t": 1e400}', id="t-1e400"),
    pytest.param(b'{"t": 3, "code": "%s", "value": 1%s}' % (SPO2.encode(), b"0" * 400),
                 id="value-400-digit-integer"),
    pytest.param(b'{"t": 1%s}' % (b"0" * 400), id="t-400-digit-integer"),
    pytest.param(b'{"t": 3, "code": "%s", "value": 1%s}' % (SPO2.encode(), b"0" * 5000),
                 id="value-5000-digit-integer"),
    pytest.param(b'{"t": 3, "code": "\xff\xfe", "value": 97}', id="not-utf8"),
    pytest.param(b"\x80\x81\x82", id="binary"),
    pytest.param(b"[" * 100_000, id="deep-nesting"),
    pytest.param(b'{"t": 3, "x": ' + b"{" * 100_000, id="deep-nesting-in-an-object"),
    pytest.param(b'{"t": 3, "code": ["a"], "value": 97}', id="code-list"),
    pytest.param(b'{"t": 3, "state": ["connected"]}', id="state-list"),
]  # fmt: skip


@pytest.mark.parametrize("bad", UNREADABLE)
def test_unreadable_input_is_one_sentence_exit_2_and_no_traceback(tmp_path, bad):
    path = tmp_path / "bad.jsonl"
    ok = (json.dumps(m(0, SPO2, 97)) + "\n").encode()
    path.write_bytes(ok + bad + b"\n" + ok.replace(b'"t": 0', b'"t": 60'))
    proc = run("--in", str(path))
    if bad.startswith(b'{"t": 3, "code": ["a"]'):  # a code that is no code: not alarmed on
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == EXIT_USER_ERROR, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"kapmonitor: {path} line 2"), line


def test_unreadable_input_on_standard_input():
    proc = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "alarms", "replay", "--in", "-"],
        cwd=ROOT, capture_output=True, input=b'{"t": 0}\n{"t": 1, "v": \xff}\n', timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.decode().splitlines() == [
        "kapmonitor: standard input line 2 is not UTF-8 text: is it a JSON lines file?"
    ]


def test_time_going_back_for_a_device_is_refused_naming_the_line(tmp_path):
    # The reported case: after a backward jump, SpO2 80 % for 49 samples raised nothing.
    lines = [m(t, SPO2, 97, device="ox") for t in range(100, 200)]
    lines += [m(50 + t, SPO2, 80, device="ox") for t in range(49)]
    proc = run("--in", str(write(tmp_path / "back.jsonl", lines)))
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.splitlines() == [
        f"kapmonitor: {tmp_path / 'back.jsonl'} line 101 goes back in time: t = 50 is before "
        "t = 199 on line 100 for device 'ox'; sort the input by time"
    ]


def test_time_may_differ_between_devices_and_a_bare_time_line_may_lag(tmp_path):
    lines = [m(10, SPO2, 97, device="ox1"), m(5, SPO2, 97, device="ox2"), {"t": 1}]
    records(run("--in", str(write(tmp_path / "two.jsonl", lines))))


def test_the_alarm_lines_record_writes_are_not_input():
    alarm = {"t": 10.0, "condition": "spo2-low", "code": SPO2, "priority": "medium",
             "kind": "physiological", "state": "active", "value": 88, "limit": 90.0,
             "device": "sim:desaturation"}  # fmt: skip
    lines = [json.dumps(m(10, SPO2, 88)), json.dumps(alarm), json.dumps({**alarm, "t": 11})]
    assert list(read_items(lines)) == [Numeric("input", Code.SPO2, 88, Stamp(10, 10))]


def test_a_line_with_no_device_belongs_to_the_one_device_named():
    # A one-device record names its device only on its state lines.
    lines = [
        json.dumps({"t": 0, "state": "connected", "detail": "", "device": "sim:x"}),
        json.dumps(m(1, SPO2, 97)),
    ]
    assert [i.source for i in read_items(lines)] == ["sim:x", "sim:x"]
    lines.insert(1, json.dumps({"t": 0, "state": "connected", "detail": "", "device": "sim:y"}))
    assert [i.source for i in read_items(lines)] == ["sim:x", "sim:y", "input"]
