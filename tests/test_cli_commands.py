"""The commands as a tester uses them: record, decode and simulate, end to end."""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import sys
import threading

from devices.protocols.nonin import NoninFormat2Emulator
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.cli import main
from kapmonitor.core.codes import Code
from tests.conftest import ROOT


def _record(*argv: str) -> list[dict]:
    out = io.StringIO()
    assert main(["record", *argv], out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_two_devices_are_merged_into_one_stream_each_item_naming_its_device():
    lines = _record(
        "--device", "sim:typical", "--device", "sim:probe-off", "--seed", "2",
        "--speed", "20000", "--duration", "45m", "--no-waves",
    )  # fmt: skip
    devices = {line["device"] for line in lines}
    assert devices == {"sim:typical", "sim:probe-off"}
    for device in devices:
        mine = [line for line in lines if line["device"] == device and "condition" not in line]
        times = [line["t"] for line in mine if "code" in line]
        assert times == sorted(times)  # each device's items arrive in its own order
        assert max(times) <= 45 * 60
        assert mine[-1]["state"] == "disconnected"
    # The probe-off scenario shows its fault; the typical one does not.
    flagged = {line["device"] for line in lines if "sensor-off" in line.get("flags", [])}
    assert flagged == {"sim:probe-off"}
    missing = [line for line in lines if "unit" in line and line["value"] is None]
    assert missing and all(line["device"] == "sim:probe-off" for line in missing)


def test_the_same_seed_records_the_same_session_and_another_seed_does_not():
    args = ("--device", "sim:typical", "--speed", "20000", "--duration", "30m")

    def session(seed: str) -> tuple[list, list]:
        # Alarm lines are written as the alarm thread decides, so where they fall among the
        # measurements varies; each of the two sequences is the same run after run.
        lines = _record(*args, "--seed", seed)
        alarms = [line for line in lines if "condition" in line]
        return [line for line in lines if "condition" not in line], alarms

    first = session("7")
    assert first == session("7")
    assert first[0] != session("8")[0]


def test_a_recording_has_the_scenario_timeline_in_simulated_time():
    lines = _record("--device", "sim:typical", "--speed", "20000", "--duration", "30m")
    session = KapSession(load_scenario("typical"), seed=0)
    dose = [line for line in lines if line.get("event") == "dose"]
    assert [d["t"] for d in dose] == [session.dose_time]
    sys_readings = [line for line in lines if line.get("code") == Code.NIBP_SYS.value]
    expected = [r for r in session.nibp_readings if r.t < 30 * 60]
    assert [(x["t"], x["value"]) for x in sys_readings] == [(r.t, r.systolic) for r in expected]
    pleth = [line for line in lines if line.get("code") == Code.PLETH.value]
    assert pleth and all(p["fs"] == 100.0 for p in pleth)
    n_samples = sum(len(p["samples"]) for p in pleth)
    assert n_samples == 30 * 60 * 100  # no sample lost or doubled between blocks


def test_decode_turns_nonin_bytes_into_json_lines(tmp_path):
    session = KapSession(load_scenario("probe-off"), seed=4)
    wire = NoninFormat2Emulator(session).emit(0.0, 60.0)
    path = tmp_path / "capture.bin"
    path.write_bytes(wire)
    result = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "decode", "--protocol", "nonin2", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == ""
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 60 * 3 * 3
    numerics = [x for x in lines if "value" in x]
    waves = [x for x in lines if "samples" in x]
    assert set(numerics[0]) == {"t", "code", "value", "unit", "flags"}
    assert {x["code"] for x in numerics} == {Code.SPO2.value, Code.PULSE_RATE.value}
    assert {x["unit"] for x in numerics} == {"%", "/min"}
    assert all(w["fs"] == 75.0 and len(w["samples"]) == 25 for w in waves)
    # t is seconds from the start of the stream at the device's own rate (3 packets a second),
    # to within decode's 10 ms steps: a block's t is when its first frame had arrived (1/75 s).
    assert math.isclose(waves[0]["t"], 1 / 75, abs_tol=0.01)
    assert math.isclose(waves[-1]["t"], 59 + 2 / 3 + 1 / 75, abs_tol=0.01)
    rates = [x["value"] for x in numerics if x["code"] == Code.PULSE_RATE.value]
    assert rates == [round(session.vitals(k / 3).heart_rate) for k in range(len(rates))]

    # The same bytes through stdin, cut short and with garbage in the middle, still decode,
    # and the damage is reported on stderr in one line.
    damaged = wire[:3050] + b"\xff\x00garbage" + wire[3050:6000]  # inside packet 25 of 48
    piped = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "decode", "--protocol", "nonin2", "-"],
        cwd=ROOT,
        input=damaged,
        capture_output=True,
        timeout=60,
    )
    assert piped.returncode == 0
    assert len(piped.stdout.decode().splitlines()) == (48 - 1) * 3
    assert len(piped.stderr.decode().splitlines()) == 1


def test_simulate_writes_the_wire_format_to_an_existing_port_url():
    """``--port socket://…``: the simulator connects to a host listening on TCP."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = bytearray()

    def host():
        conn, _ = server.accept()
        with conn:
            while len(received) < 375 * 4:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received.extend(chunk)

    reader = threading.Thread(target=host)
    reader.start()
    with subprocess.Popen(
        [sys.executable, "-m", "kapmonitor", "simulate", "--port", f"socket://127.0.0.1:{port}",
         "--seed", "3", "--speed", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        try:
            reader.join(30)
        finally:
            proc.terminate()
            proc.communicate(timeout=10)
    server.close()
    assert len(received) >= 375 * 4
    session = KapSession(load_scenario("typical"), seed=3)
    assert bytes(received) == NoninFormat2Emulator(session).emit(0.0, len(received) / 375)
