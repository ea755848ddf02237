"""`kapmonitor decode` streams its input, and damaged captures get one sentence (issue 12).

decode used to read its whole input and make a Python object per 10 ms of bytes: about 110
bytes of memory per input byte, so a 50 MB capture ended in MemoryError. It now reads in large
chunks and writes items as they come; its peak memory does not depend on the input's size.
A capture whose header or times are not what the format says is refused in one sentence; one
damaged inside is read on from the next intact record, saying what was skipped.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from devices.capture import MAGIC, CaptureWriter, Kind, read_capture
from devices.protocols.base import SerialSettings
from devices.protocols.nonin import PACKET_BYTES, NoninFormat2Emulator
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.cli import EXIT_USER_ERROR
from tests.conftest import ROOT

_RECORD = struct.Struct("<BdI")

#: Run decode in a child and report its peak resident memory (kB) on the last stderr line.
_MEASURED_DECODE = """
import os, resource, sys
from kapmonitor.cli import main
with open(os.devnull, "w") as sink:
    status = main(["decode", *sys.argv[1:]], out=sink)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(status)
"""


def _device_bytes(seconds: float) -> bytes:
    session = KapSession(load_scenario("typical"), seed=7)
    return NoninFormat2Emulator(session).emit(0.0, seconds)


def _capture(path: Path, wire: bytes, *, per_record: int = PACKET_BYTES) -> Path:
    """A capture as `kapmonitor capture` writes it: one record per packet, 1/3 s apart."""
    writer = CaptureWriter(path, "nonin2", "/dev/ttyUSB0", SerialSettings(9600))
    for k, start in enumerate(range(0, len(wire), per_record)):
        writer.write(Kind.FROM_DEVICE, k / 3, wire[start : start + per_record])
    writer.close()
    return path


def _peak_kb(*args: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED_DECODE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.splitlines()[-1])


def test_decode_peak_memory_does_not_grow_with_the_input(tmp_path):
    block = _device_bytes(600.0)  # ten minutes of the device, repeated to size
    small, large = 500_000, 2_000_000
    for size in (small, large):
        wire = (block * (size // len(block) + 1))[:size]
        (tmp_path / f"{size}.bin").write_bytes(wire)
        _capture(tmp_path / f"{size}.kapcap", wire, per_record=4 * PACKET_BYTES)
    plain = [_peak_kb("--protocol", "nonin2", str(tmp_path / f"{n}.bin")) for n in (small, large)]
    capture = [_peak_kb(str(tmp_path / f"{n}.kapcap")) for n in (small, large)]
    # Holding the input would add ~110 bytes per extra input byte: 165 MB here.
    assert plain[1] - plain[0] < 20_000, plain
    assert capture[1] - capture[0] < 20_000, capture


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kapmonitor", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """One plain sentence on stderr, exit 2, no traceback."""
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kapmonitor: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _with_header(header: bytes, records: bytes = b"") -> bytes:
    return MAGIC + header + b"\n" + records


def _good_header() -> bytes:
    meta = {"format": 1, "protocol": "nonin2", "port": "/dev/x", "started": "2026-01-01T00:00Z"}
    return json.dumps({**meta, "serial": {"baudrate": 9600}}).encode()


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"null", "it is null"),
        (b"42", "it is a number"),
        (b'"nonin2"', "it is a string"),
        (b"[1, 2]", "it is a list"),
        (b"{not json", "it is not JSON"),
        (b'{"format": 1}', "'protocol' is missing"),
        (b'{"format": 2, "protocol": "nonin2"}', "format 2"),
        (b"[" * 10_000, "it is not JSON"),
    ],
)
def test_a_capture_with_a_damaged_header_is_refused_in_one_sentence(tmp_path, header, reason):
    path = tmp_path / "bad.kapcap"
    path.write_bytes(_with_header(header, _RECORD.pack(0, 0.0, 1) + b"\x01"))
    _refused(_cli("decode", str(path)), "damaged header", reason)


@pytest.mark.parametrize("header", [b"null", b"42", b'"nonin2"'])
def test_replaying_a_capture_with_a_damaged_header_is_refused_in_one_sentence(tmp_path, header):
    path = tmp_path / "bad.kapcap"
    path.write_bytes(_with_header(header, _RECORD.pack(0, 0.0, 1) + b"\x01"))
    _refused(_cli("simulate", "--replay", str(path), "--pty"), "damaged header", "not a JSON")


@pytest.mark.parametrize("t", [math.nan, math.inf, -math.inf, 1e300, -5.0])
def test_a_capture_whose_time_is_not_a_time_is_refused_in_one_sentence(tmp_path, t):
    wire = _device_bytes(2.0)
    good = _RECORD.pack(0, 0.0, PACKET_BYTES) + wire[:PACKET_BYTES]
    bad = _RECORD.pack(0, t, PACKET_BYTES) + wire[PACKET_BYTES : 2 * PACKET_BYTES]
    path = tmp_path / "bad-time.kapcap"
    path.write_bytes(_with_header(_good_header(), good + bad))
    for command in (["decode", str(path)], ["simulate", "--replay", str(path), "--pty"]):
        at = len(MAGIC) + len(_good_header()) + 1 + len(good)
        _refused(_cli(*command), "impossible time", f"record at byte {at}")


def test_a_capture_damaged_from_its_first_record_says_so(tmp_path):
    path = tmp_path / "first.kapcap"
    path.write_bytes(_with_header(_good_header(), b"\x07" + bytes(range(200))))
    for command in (["decode", str(path)], ["simulate", "--replay", str(path), "--pty"]):
        _refused(_cli(*command), "damaged from its first record", "no record")


def _decoded(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("damaged", [0, 7])
def test_a_capture_damaged_inside_is_read_on_from_the_next_intact_record(tmp_path, damaged):
    """A bad kind byte in one record (the first, or one mid-file): that record is skipped,
    the rest decodes as if it had never been there, and one warning says where and how much."""
    wire = _device_bytes(10.0)
    good = _capture(tmp_path / "good.kapcap", wire).read_bytes()
    header_len = good.index(b"\n", len(MAGIC)) + 1
    size = _RECORD.size + PACKET_BYTES
    at = header_len + damaged * size
    broken = bytearray(good)
    broken[at] = 0x07  # no such record kind
    (tmp_path / "broken.kapcap").write_bytes(broken)
    without = good[:at] + good[at + size :]  # the same capture without that record
    (tmp_path / "without.kapcap").write_bytes(without)

    proc = _cli("decode", str(tmp_path / "broken.kapcap"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "damaged" in line]
    assert warnings == [
        f"kapmonitor: capture '{tmp_path / 'broken.kapcap'}' is damaged: {size} bytes skipped "
        f"at byte {at}; the intact records after the damage were read"
    ]
    expected = _cli("decode", str(tmp_path / "without.kapcap"))
    assert _decoded(proc) == _decoded(expected) and len(_decoded(proc)) > 80


def test_replay_reading_hears_of_damage_once(tmp_path):
    wire = _device_bytes(5.0)
    data = bytearray(_capture(tmp_path / "c.kapcap", wire).read_bytes())
    header_len = data.index(b"\n", len(MAGIC)) + 1
    size = _RECORD.size + PACKET_BYTES
    for k in (3, 9):  # two damaged stretches: a bad length, then a bad kind
        data[header_len + k * size + 9 : header_len + k * size + 13] = b"\xff\xff\xff\x7f"
    heard: list[str] = []
    header, records = read_capture(bytes(data), "c.kapcap", on_damage=heard.append)
    assert header.protocol == "nonin2"
    assert len(records) == len(wire) // PACKET_BYTES - 2
    assert heard == [
        f"capture 'c.kapcap' is damaged: {2 * size} bytes skipped in 2 places, the first at "
        f"byte {header_len + 3 * size}; the intact records after the damage were read"
    ]
