"""Breathing alarms through the real command (issue 17): ``kapmonitor record`` of the simulator's
breathing scenarios, headless, in device time at --speed 600, and ``kapmonitor alarms replay``
of what it wrote giving record's own alarm lines again (the capnogram read back too).

- respiratory depression: a breathing alarm is active at least 2 minutes before any SpO2 alarm;
- the sampling line off: the technical "no CO2 signal" and no apnoea (nor any breathing alarm);
- a 30-s apnoea: the apnoea alarm after 20 s of no breath, ended by the first breath.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alarms.breathing import APNEA, ETCO2_RISE
from kapmonitor.core import jsonl
from kapmonitor.core.codes import Code
from tests.cli_process import kapmonitor

BREATHING_ALARMS = {"rr-low", "rr-high", "etco2-high", "etco2-low", APNEA, ETCO2_RISE}
DOSE_S = 600.0  #: the scenarios' dose, 10 min after the first item (t = 0)


def record(tmp_path: Path, scenario: str, minutes: int, *extra: str) -> tuple[list, Path]:
    """record's alarm lines, and the file it wrote."""
    proc = kapmonitor(
        "record", "--device", f"sim:{scenario}", "--speed", "600", "--duration", f"{minutes}m",
        "--db", f"sqlite:///{tmp_path / 'k.sqlite3'}", *extra, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / f"{scenario}.jsonl"
    out.write_text(proc.stdout)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return [line for line in lines if "condition" in line], out


def replay(path: Path) -> list[dict]:
    proc = kapmonitor("alarms", "replay", "--in", str(path))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def key(line: dict) -> tuple:
    return (round(line["t"], 2), line["condition"], line["priority"], line["state"])


def active(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["state"] == "active"]


def test_respiratory_depression_alarms_on_breathing_2_minutes_before_the_spo2(tmp_path):
    alarms, out = record(tmp_path, "respiratory-depression", 40, "--no-waves")
    breathing = [a["t"] for a in active(alarms) if a["condition"] in BREATHING_ALARMS]
    spo2 = [a["t"] for a in active(alarms) if a["code"] == Code.SPO2.value]
    assert breathing and spo2, alarms  # the scenario desaturates, late
    assert min(spo2) - min(breathing) >= 120.0, (min(breathing), min(spo2))
    assert {"rr-low", "etco2-high", ETCO2_RISE} <= {a["condition"] for a in active(alarms)}
    assert sorted(map(key, replay(out))) == sorted(map(key, alarms))


def test_sampling_line_off_raises_the_technical_alarm_and_no_apnoea(tmp_path):
    alarms, out = record(tmp_path, "sampling-line-off", 30)
    line = [a for a in alarms if a["condition"] == "no-co2-signal"]
    off = DOSE_S + 15 * 60  # the line comes off 15 min after the dose, for 2 min
    assert [(a["state"], a["t"], a["kind"], a["priority"]) for a in line] == [
        ("active", off + 10, "technical", "medium"),  # after its 10-s delay
        ("inactive", off + 120, "technical", "medium"),
    ]
    assert not {a["condition"] for a in alarms} & BREATHING_ALARMS
    assert "sensor-off" not in {a["condition"] for a in alarms}  # one alarm, not one per value
    replayed = replay(out)  # the capnogram is in the file: replay reads it too
    assert sorted(map(key, replayed)) == sorted(map(key, alarms))


def test_apnoea_alarms_after_20_s_of_no_breath_and_ends_with_the_next(tmp_path):
    alarms, out = record(tmp_path, "apnea", 32)
    start = DOSE_S + 20 * 60  # 30 s without a breath
    assert [(a["state"], a["t"], a["priority"]) for a in alarms if a["condition"] == APNEA] == [
        ("active", start + 20, "high"),
        ("inactive", start + 30, "high"),
    ]
    assert "no-co2-signal" not in {a["condition"] for a in alarms}
    assert sorted(map(key, replay(out))) == sorted(map(key, alarms))


# --- the replay reads the capnogram ------------------------------------------------------------


def lines_of(seconds: int, *, rr: float, flat_from: int) -> list[dict]:
    """An oximeter and a capnograph once a second; from ``flat_from`` the capnogram is flat."""
    out: list[dict] = []
    for t in range(seconds):
        out += [
            {"t": t, "code": Code.SPO2.value, "value": 97, "flags": []},
            {"t": t, "code": Code.PULSE_RATE.value, "value": 70, "flags": []},
            {"t": t, "code": Code.RESP_RATE.value, "value": rr if t >= flat_from else 14},
        ]
        flat = t >= flat_from
        samples = [0.3 if flat or (t * 20 + i) % 80 >= 40 else 38.0 for i in range(20)]
        out.append({"t": t, "code": Code.CO2.value, "fs": 20.0, "samples": samples})
    return out


@pytest.mark.parametrize(
    ("rr", "expected", "absent"),
    [
        (14, "no-co2-signal", APNEA),  # a rate still shown: the flat line is the line
        (0, APNEA, "no-co2-signal"),  # the device counts 0: the flat line is the patient
    ],
)
def test_replay_reads_a_flat_capnogram(tmp_path, rr, expected, absent):
    path = tmp_path / "flat.jsonl"
    path.write_text("".join(jsonl.dumps(x) + "\n" for x in lines_of(60, rr=rr, flat_from=10)))
    conditions = {a["condition"] for a in active(replay(path))}
    assert expected in conditions and absent not in conditions


@pytest.mark.parametrize(
    "line",
    [
        '{"t": 1, "code": "MDC_AWAY_CO2", "fs": 0, "samples": [1, 2]}',
        '{"t": 1, "code": "MDC_AWAY_CO2", "fs": 20, "samples": []}',
        '{"t": 1, "code": "MDC_AWAY_CO2", "fs": 20, "samples": [1, "x"]}',
        '{"t": 1, "code": "MDC_AWAY_CO2", "fs": 20, "samples": [1, 1e400]}',
        '{"t": 1, "code": "MDC_AWAY_CO2", "fs": true, "samples": [1]}',
        '{"t": 1, "code": "MDC_AWAY_CO2", "fs": 20, "samples": 5}',
    ],
)
def test_a_damaged_capnogram_line_is_refused_in_one_sentence(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    proc = kapmonitor("alarms", "replay", "--in", str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "line 1" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
