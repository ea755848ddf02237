"""Philips IntelliVue Data Export (MIB/RS232): spec vectors, the real MP90 sessions, the emulator's
session, damage, a pty round trip with the real driver, and the command line."""

from __future__ import annotations

import itertools
import math
import re
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.protocols.intellivue import (
    ABORT,
    ASSOCIATION_REQUEST,
    RELEASE_REQUEST,
    RELEASE_RESPONSE,
    IntellivueDriver,
    IntellivueEmulator,
    IntellivueParser,
    decode_float,
    encode_float,
    fcs_bytes,
    frame,
    parse_message,
)
from devices.protocols.intellivue import messages as ivmsg
from devices.protocols.intellivue import nomenclature as nom
from devices.protocols.intellivue import parser as ivparser
from devices.protocols.intellivue import wire as ivwire
from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from devices.sim.serve import serve
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.errors import UserError
from kapmonitor.core.hub import Hub
from kapmonitor.core.model import (
    ConnectionState,
    DeviceValue,
    Flag,
    NibpReading,
    Numeric,
    WaveformBlock,
)
from tests.conftest import SHARED_DATA
from tests.pipeline_helpers import Collector, decode_cli, feed_chunks
from tests.protocol_helpers import ORIGIN, PTY, TeeEndpoint, at_byte_rate, check_accounting, hypo

DATA = Path(__file__).parent / "data" / "intellivue-mp90"  # slices of ../shared/data (README)
SESSIONS = {"1A": "1A_normal_NSR_SpO2-100", "1B": "1B_hypoxic_NSR_SpO2-85"}
HYPO = hypo(max_examples=60)


# --- helpers ------------------------------------------------------------------------------------


byte_stamp = at_byte_rate(nom.BYTE_RATE)


def decode(stream: bytes, cuts=None) -> tuple[IntellivueParser, list]:
    """Feed ``stream`` split at ``cuts``, each chunk stamped by its last byte."""
    parser = IntellivueParser("mp90")
    return parser, feed_chunks(parser, stream, cuts, byte_stamp)


def comparable(items: list) -> list[tuple]:
    out = []
    for it in items:
        stamp = round(it.stamp.mono, 6)
        if isinstance(it, Numeric):
            out.append(("n", it.code, it.value, it.flags, stamp))
        elif isinstance(it, DeviceValue):
            out.append(("v", it.key, it.value, it.flags, stamp))
        elif isinstance(it, NibpReading):
            out.append(("p", it.systolic, it.diastolic, it.mean, it.flags, stamp))
        else:
            samples = tuple(np.nan_to_num(it.samples, nan=-1.0).tolist())
            out.append(("w", it.fs, samples, it.flags, stamp))
    return out


def wire_frames(stream: bytes) -> list[bytes]:
    """The wire bytes of each frame (C0 … C1) of a clean stream."""
    return [m.group(0) for m in re.finditer(rb"\xc0[^\xc0\xc1]*\xc1", stream)]


def numerics_blocks(path: Path) -> list[list[float]]:
    """The logging tool's values, one list per poll (its physio labels are not reliable)."""
    blocks = []
    for block in path.read_text().split("Physio_id")[1:]:
        rows = []
        for line in block.splitlines():
            parts = line.split()
            if (
                len(parts) >= 4
                and not parts[0][0].isdigit()
                and not line.startswith(("=", "Year"))
                and re.match(r"^-?\d", parts[-1])
            ):
                rows.append(float(parts[-1]))
        blocks.append(rows)
    return blocks


def raw_numerics(stream: bytes) -> list[list[tuple[int, int, int, int]]]:
    """(physio, state, unit, FLOAT) of every numeric of every numerics poll result, wire order."""
    out = []
    for f in wire_frames(stream):
        content = ivwire.unescape(f[1:-1])
        msg = parse_message(content[4:-2])
        if msg.kind != "poll-result" or msg.poll.obj_code != nom.NOM_MOC_VMO_METRIC_NU:
            continue
        values = []
        for obs in msg.poll.observations:
            c = obs.attrs.get(nom.NOM_ATTR_NU_CMPD_VAL_OBS)
            if c is not None:
                values += [struct.unpack_from(">HHHI", c, 4 + 10 * i) for i in range(c[1])]
            nu = obs.attrs.get(nom.NOM_ATTR_NU_VAL_OBS)
            if nu is not None:
                values.append(struct.unpack(">HHHI", nu))
        out.append(values)
    return out


def golden_files(name: str, full: bool) -> tuple[bytes, Path, Path]:
    if full:
        base = SHARED_DATA / "intellivue-mp90" / SESSIONS[name]
        if not base.is_dir():
            pytest.skip(f"the shared MP90 sessions are not at {base}")
        return (base / "wire.bin").read_bytes(), base / "numerics.txt", base / "PLETH.bin"
    return (
        (DATA / f"{name}.wire.DERIVED.bin").read_bytes(),
        DATA / f"{name}.numerics.txt",
        DATA / f"{name}.PLETH.bin",
    )


@pytest.fixture(scope="module")
def slice_1a() -> bytes:
    return (DATA / "1A.wire.DERIVED.bin").read_bytes()


# --- spec vectors -------------------------------------------------------------------------------


def test_fcs_spec_vectors() -> None:
    assert fcs_bytes(bytes.fromhex("3A71")) == bytes.fromhex("9B26")
    assert fcs_bytes(bytes.fromhex("3A91")) == bytes.fromhex("95C1")
    # The spec's whole frame (it leaves out the header): the FCS byte C1 is escaped.
    data = bytes.fromhex("3A91")
    assert b"\xc0" + ivwire.escape(data + fcs_bytes(data)) + b"\xc1" == bytes.fromhex(
        "C03A91957DE1C1"
    )
    assert ivwire.unescape(bytes.fromhex("3A91957DE1")) == bytes.fromhex("3A9195C1")
    assert ivwire.unescape(b"\x01\x7d") is None  # 7D C1: the sender aborted the frame


def test_float_values_and_specials() -> None:
    assert decode_float(0xFF00035F) == 86.3  # the spot check in shared/data/README.md (1B)
    assert decode_float(0xFF0003E8) == 100.0
    assert decode_float(0x00000050) == 80.0
    assert decode_float(0xFE000050) == 0.8
    assert decode_float(0xFFFFFFFE) == -0.2  # a signed mantissa
    assert decode_float(0x02000003) == 300.0
    assert math.isnan(decode_float(0x007FFFFF))  # NaN
    assert math.isnan(decode_float(0x00800000))  # NRes
    assert decode_float(0x007FFFFE) == math.inf
    assert decode_float(0x00800002) == -math.inf
    assert ivwire.float_value(0x007FFFFF) == (None, None)
    for special in (0x00800000, 0x007FFFFE, 0x00800002):
        assert ivwire.float_value(special) == (None, Flag.OUT_OF_RANGE)
    for value, exp in ((86.3, -1), (0.8, -2), (120.0, 0), (-0.2, -1), (None, 0)):
        raw = encode_float(value, exp)
        assert ivwire.float_value(raw)[0] == value


@given(st.integers(0, 0xFFFFFFFF))
def test_any_float_decodes(raw: int) -> None:
    x = decode_float(raw)
    value, flag = ivwire.float_value(raw)
    assert value is None or value == x
    assert flag in (None, Flag.OUT_OF_RANGE)


def test_measurement_state_flags() -> None:
    hr = encode_float(72.0)
    assert ivparser.numeric_value(0x0000, hr) == (72.0, frozenset())
    assert ivparser.numeric_value(nom.MSMT_STATE_IN_ALARM, hr) == (72.0, frozenset())
    assert ivparser.numeric_value(nom.QUESTIONABLE, hr) == (72.0, {Flag.QUESTIONABLE})
    assert ivparser.numeric_value(nom.INVALID, hr) == (None, {Flag.MEASUREMENT_FAILED})
    assert ivparser.numeric_value(nom.UNAVAILABLE, hr) == (None, frozenset())
    assert ivparser.numeric_value(nom.DEMO_DATA, hr) == (72.0, {Flag.DEMO})
    assert ivparser.numeric_value(nom.TEST_DATA, hr) == (72.0, {Flag.DEMO})
    assert ivparser.numeric_value(0, 0x007FFFFE) == (None, {Flag.OUT_OF_RANGE})


def test_messages_match_the_public_templates() -> None:
    """The host's messages, byte for byte as VSCaptureMP (Class2.cs) sends them."""
    assert len(ASSOCIATION_REQUEST) == 238 and ASSOCIATION_REQUEST[:2] == b"\x0d\xec"
    assert ASSOCIATION_REQUEST[2:20].hex() == "050813010016010280001402000 2c1dc3180".replace(
        " ", ""
    )
    assert ivmsg.mds_create_result(1, 0x000ABD00) == bytes.fromhex(
        "E10000020002001400010001000E002100000000000ABD000D060000"
    )
    assert ivmsg.ext_poll_request(1, 1, nom.NOM_MOC_VMO_METRIC_NU, 30.0) == bytes.fromhex(
        "E10000020001002800010007002200210000000000000000F13B00140001000100060000"
        "00010008F13E00040003A980"
    )
    assert RELEASE_REQUEST.hex().startswith("0918c116") and len(RELEASE_REQUEST) == 26
    assert RELEASE_RESPONSE.hex().startswith("0a18c116") and ABORT[:2] == b"\x19\x2e"
    aare = ivmsg.association_result(1.5)
    assert parse_message(aare).kind == "accept" and parse_message(aare).min_poll_s == 1.5
    assert ivmsg.negotiated_timeout(1.0) == 10.0 and ivmsg.negotiated_timeout(60.0) == 130.0
    assert ivmsg.negotiated_timeout(20.0) == 60.0 and ivmsg.negotiated_timeout(None) == 10.0
    kinds = {parse_message(m).kind for m in (RELEASE_REQUEST, RELEASE_RESPONSE, ABORT)}
    assert kinds == {"release-request", "release-response", "abort"}


def test_absolute_time_round_trips() -> None:
    t = datetime_2015 = 1441630621.0  # 2015-09-07 12:57:01 (the MDS time of session 1A)
    raw = ivwire.encode_abs_time(datetime_2015)
    assert raw.hex() == "2015090712570100" and ivwire.decode_abs_time(raw) == t
    assert (
        ivwire.decode_abs_time(b"\xff" * 8) is None and ivwire.encode_abs_time(None) == b"\xff" * 8
    )


# --- golden: the real MP90 sessions -------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["slice", "full"])
@pytest.mark.parametrize("name", ["1A", "1B"])
def test_golden_numerics_equal_the_monitors_own(name: str, full: bool) -> None:
    wire, numerics_path, pleth_path = golden_files(name, full)
    raw = raw_numerics(wire)
    ref = numerics_blocks(numerics_path)
    assert len(raw) == len(ref) and len(raw) >= 62
    tool_unsigned = 0
    for mine, theirs in zip(raw, ref, strict=True):
        assert len(mine) == len(theirs) == 8
        for (_, _, _, fl), val in zip(mine, theirs, strict=True):
            x = decode_float(fl)
            if math.isnan(x):
                assert val == 8388607.0  # the tool prints NaN's mantissa
            elif x < 0:
                # The tool reads the mantissa unsigned (0xFFFFFE × 10^-1 = 1677721.4): the same
                # bits, and the spec says the mantissa is signed.
                assert val == pytest.approx((fl & 0xFFFFFF) * 10.0 ** ((fl >> 24) - 256), 1e-6)
                tool_unsigned += 1
            else:
                assert val == pytest.approx(x, abs=1e-9)
    # Only the ST value (physio 0x0301, -0.2 or -0.3 mm) is negative.
    assert tool_unsigned == len(raw)
    assert {p for block in raw for p, *_ in block} == {
        0x4A05,
        0x4A06,
        0x4A07,
        0x4182,
        0x0301,
        0x4261,
        0x4BB8,
        0x4BB0,
    }

    parser, items = decode(wire)
    s = parser.stats
    assert (s.checksum_errors, s.framing_errors, s.bytes_discarded, s.messages_malformed) == (
        0,
        0,
        0,
        0,
    )
    check_accounting(parser)
    assert s.frames_ok == s.poll_results + 2  # + the MDS create event and the set result
    assert [e.kind for e in parser.take_events()] == ["mds-create"]
    spo2 = [i for i in items if isinstance(i, Numeric) and i.code is Code.SPO2]
    hr = [i for i in items if isinstance(i, Numeric) and i.code is Code.HEART_RATE]
    assert len(spo2) == len(hr) == len(raw) and {h.value for h in hr} == {80.0}
    if name == "1A":
        assert all(99.0 <= x.value <= 100.0 and not x.flags for x in spo2)
    else:  # in alarm (state 0x0002): a value like any other
        assert all(86.1 <= x.value <= 86.6 and not x.flags for x in spo2)
    keys = Counter(i.key for i in items if isinstance(i, DeviceValue))
    assert keys == {"INTELLIVUE_ECG_AMPL_ST_I": len(raw), "INTELLIVUE_ECG_V_P_C_CNT": len(raw)}
    # The NIBP compound is NaN and unavailable throughout: no cuff reading was taken.
    assert not [i for i in items if isinstance(i, NibpReading)]
    # Pleth: 32 samples a result at 125 Hz, exactly the tool's pleth log; ECG waves are not kept.
    waves = [i for i in items if isinstance(i, WaveformBlock)]
    assert {(w.fs, len(w.samples)) for w in waves} == {(125.0, 32)}
    samples = np.concatenate([w.samples for w in waves])
    ref_pleth = np.frombuffer(pleth_path.read_bytes(), dtype="<u2").reshape(-1, 3)[:, 2]
    assert np.array_equal(samples, ref_pleth)
    assert s.waves_ignored == len(waves)  # one ECG wave beside each pleth block


@pytest.mark.parametrize("name", ["1A", "1B"])
def test_the_fast_path_for_wave_results_gives_the_same_items(name: str, monkeypatch) -> None:
    wire, _, _ = golden_files(name, full=False)
    parser, fast = decode(wire)
    assert parser._wave_layout is not None  # the real MP90 results take the fast path
    monkeypatch.setattr(IntellivueParser, "_fast_wave", lambda self, u, at, out: False)
    slow_parser, slow = decode(wire)
    assert comparable(fast) == comparable(slow) and parser.stats == slow_parser.stats


def test_golden_spot_check_frame_of_1b() -> None:
    wire = (DATA / "1B.wire.DERIVED.bin").read_bytes()
    content = ivwire.unescape(wire_frames(wire)[2][1:-1])
    assert bytes.fromhex("09 50 00 0A 4B B8 00 02 02 20 FF 00 03 5F".replace(" ", "")) in content


def test_the_real_mds_create_event_places_the_monitors_clock(slice_1a: bytes) -> None:
    content = ivwire.unescape(wire_frames(slice_1a)[0][1:-1])
    msg = parse_message(content[4:-2])
    assert (msg.kind, msg.invoke_id) == ("mds-create", 1)
    assert ivwire.decode_abs_time(msg.attrs[nom.NOM_ATTR_TIME_ABS]) == 1441630621.0
    reply = ivmsg.mds_create_result(msg.invoke_id, msg.event_time)
    answered = parse_message(reply)
    assert (answered.kind, answered.invoke_id, answered.event_time) == (
        "mds-create-result",
        1,
        msg.event_time,
    )


def test_stamps_follow_the_monitors_clock(slice_1a: bytes) -> None:
    """Fed as it would arrive (one frame at a time, on time), pleth blocks are gapless."""
    parser = IntellivueParser("mp90")
    frames = wire_frames(slice_1a)
    items = []
    for f in frames:
        msg = parse_message(ivwire.unescape(f[1:-1])[4:-2])
        rel = msg.poll.rel_time if msg.poll else 0
        items += parser.feed(f, ORIGIN.shifted(rel / nom.TICKS + 0.01))
    waves = [i for i in items if isinstance(i, WaveformBlock)]
    gaps = np.diff([w.stamp.mono for w in waves])
    assert np.allclose(gaps, 0.256, atol=1e-9)
    nums = [i.stamp.mono for i in items if isinstance(i, Numeric) and i.code is Code.SPO2]
    assert np.allclose(np.diff(nums), 1.024, atol=1e-9)


# --- damage: arbitrary bytes, re-chunking, corruption ---------------------------------------------


@HYPO
@given(
    st.lists(st.sampled_from([b"\xc0", b"\xc1", b"\x7d", b"\x11\x01", b"\xe1\x00"]), max_size=200)
)
def test_delimiter_soup_never_raises(pieces: list[bytes]) -> None:
    parser, _ = decode(b"".join(pieces), list(range(0, 400, 7)))
    check_accounting(parser)


@HYPO
@given(
    st.integers(3, 60),
    st.sampled_from(["flip", "cut", "insert", "truncate-at-end"]),
    st.binary(min_size=1, max_size=12),
    st.integers(0, 10_000),
)
def test_damage_to_one_frame_spares_every_other(
    slice_1a: bytes, k: int, how: str, junk: bytes, where: int
) -> None:
    frames = wire_frames(slice_1a)[:64]
    f = frames[k]
    i = 1 + where % (len(f) - 2)
    if how == "flip":
        bad = f[:i] + bytes((f[i] ^ 0x5A,)) + f[i + 1 :]
    elif how == "cut":
        bad = f[:i]  # the rest of the frame was lost: the next frame's C0 follows
    elif how == "insert":
        bad = f[:i] + junk + f[i:]
    else:
        bad = f[:i]
        frames = frames[: k + 1]
    stream = b"".join(frames[:k]) + bad + b"".join(frames[k + 1 :])
    parser, items = decode(stream, list(range(0, len(stream), 97)))
    check_accounting(parser)
    # The same stream with frame k simply missing gives the same items, apart from stamps.
    ref_parser, ref = decode(b"".join(frames[:k]) + b"".join(frames[k + 1 :]))
    assert [c[:-1] for c in comparable(items)] == [c[:-1] for c in comparable(ref)]
    s = parser.stats
    assert s.frames_ok in (ref_parser.stats.frames_ok, ref_parser.stats.frames_ok + 1)
    if how == "flip" and s.frames_ok == ref_parser.stats.frames_ok:
        assert s.checksum_errors + s.framing_errors >= 1


def test_fcs_errors_are_counted_and_shown_in_the_status(slice_1a: bytes) -> None:
    frames = wire_frames(slice_1a)[:20]
    f = frames[5]
    bad = f[:40] + bytes((f[40] ^ 0x01,)) + f[41:]
    driver = IntellivueDriver(DeviceSpec.parse("intellivue@/dev/null-monitor"), lambda i: None)
    driver.parser.feed(b"".join(frames[:5]) + bad + b"".join(frames[6:]), ORIGIN)
    assert driver.parser.stats.checksum_errors == 1 and driver.parser.stats.frames_ok == 19
    assert "1 checksum errors" in driver.status()


def test_both_directions_in_one_file_decode_the_same(slice_1a: bytes) -> None:
    """A capture of the shared line: the host's frames are good frames that give no items."""
    frames = wire_frames(slice_1a)[:30]
    host = [
        frame(ASSOCIATION_REQUEST),
        frame(ivmsg.mds_create_result(1, 0)),
        frame(ivmsg.ext_poll_request(2, 1, nom.NOM_MOC_VMO_METRIC_NU)),
    ]
    mixed = host[0] + frames[0] + host[1] + host[2] + b"".join(frames[1:])
    parser, items = decode(mixed)
    _, ref = decode(b"".join(frames))
    assert [c[:-1] for c in comparable(items)] == [c[:-1] for c in comparable(ref)]
    assert parser.stats.host_messages == 3 and parser.stats.framing_errors == 0


# --- the emulator's session ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def typical() -> KapSession:
    return KapSession(load_scenario("typical"), seed=5)


def messages(data: bytes) -> list:
    return [parse_message(ivwire.unescape(f[1:-1])[4:-2]) for f in wire_frames(data)]


def associated(session: KapSession, t: float = 0.0, **kw) -> IntellivueEmulator:
    """An emulator with an association and a confirmed MDS create event at ``t``."""
    emu = IntellivueEmulator(session, **kw)
    reply = messages(emu.on_host_bytes(frame(ASSOCIATION_REQUEST), t))
    assert [m.kind for m in reply] == ["accept", "mds-create"]
    emu.on_host_bytes(frame(ivmsg.mds_create_result(reply[1].invoke_id, reply[1].event_time)), t)
    assert emu.confirmed
    return emu


def test_the_emulator_is_silent_until_asked_and_repeats_the_create_event(typical) -> None:
    emu = IntellivueEmulator(typical)
    assert emu.emit(0.0, 20.0) == b""
    polls = frame(ivmsg.ext_poll_request(1, 1, nom.NOM_MOC_VMO_METRIC_NU))
    assert emu.on_host_bytes(polls, 1.0) == b""  # no association: no answer
    reply = messages(emu.on_host_bytes(frame(ASSOCIATION_REQUEST), 2.0))
    assert [m.kind for m in reply] == ["accept", "mds-create"] and reply[0].min_poll_s == 1.0
    create = reply[1]
    # Polls before the create event is confirmed are not served; the event is repeated.
    emu.on_host_bytes(polls, 2.5)
    again = messages(emu.emit(2.5, 13.0))
    assert [(m.kind, m.invoke_id) for m in again] == [("mds-create", create.invoke_id)] * 2
    wrong = frame(ivmsg.mds_create_result(create.invoke_id + 1, create.event_time))
    emu.on_host_bytes(wrong, 13.0)
    assert not emu.confirmed
    emu.on_host_bytes(frame(ivmsg.mds_create_result(create.invoke_id, create.event_time)), 13.5)
    assert emu.confirmed and emu.emit(13.5, 20.0) == b""  # confirmed, but nothing polled yet


def test_polls_are_answered_on_the_monitors_grid(typical) -> None:
    emu = associated(typical)
    emu.on_host_bytes(frame(ivmsg.wave_priority_request(7)), 0.1)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU)), 0.2)
    reply = messages(
        emu.on_host_bytes(frame(ivmsg.ext_poll_request(9, 2, nom.NOM_MOC_VMO_METRIC_SA_RT)), 0.3)
    )
    assert reply == []
    out = messages(emu.emit(0.3, 5.0))
    nums = [m.poll for m in out if m.poll.obj_code == nom.NOM_MOC_VMO_METRIC_NU]
    waves = [m.poll for m in out if m.poll.obj_code == nom.NOM_MOC_VMO_METRIC_SA_RT]
    assert [p.sequence for p in nums] == [0, 1, 2, 3] and {p.invoke_id for p in nums} == {8}
    assert len(waves) == 18 and {p.invoke_id for p in waves} == {9}
    rel = [p.rel_time for p in nums]
    assert np.diff(rel).tolist() == [8192] * 3  # 1.024 s in 1/8 ms
    # Emit boundaries do not change the bytes.
    emu2 = associated(typical)
    emu2.on_host_bytes(frame(ivmsg.wave_priority_request(7)), 0.1)
    emu2.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU)), 0.2)
    emu2.on_host_bytes(frame(ivmsg.ext_poll_request(9, 2, nom.NOM_MOC_VMO_METRIC_SA_RT)), 0.3)
    edges = [0.3, 0.31, 1.0, 1.024, 1.5, 2.048, 3.3, 5.0]
    chunked = b"".join(emu2.emit(a, b) for a, b in itertools.pairwise(edges))
    assert messages(chunked) == out
    # A repeated request replaces the running poll: sequence from 0, no duplicate result.
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(10, 1, nom.NOM_MOC_VMO_METRIC_NU)), 5.0)
    more = [m.poll for m in messages(emu.emit(5.0, 7.0)) if m.poll.obj_code == 6]
    assert [(p.invoke_id, p.sequence) for p in more] == [(10, 0), (10, 1)]
    assert more[0].rel_time - rel[-1] == 8192


def test_a_poll_ends_after_its_period(typical) -> None:
    emu = associated(typical)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU, 3.0)), 0.0)
    assert len(messages(emu.emit(0.0, 9.0))) == 2  # results at 1.024 and 2.048 s only


def test_release_and_timeout_and_drop(typical) -> None:
    emu = associated(typical, timeout=10.0)
    assert messages(emu.on_host_bytes(frame(RELEASE_REQUEST), 1.0))[0].kind == "release-response"
    assert not emu.associated and emu.ended == [(1.0, "release")]
    emu = associated(typical, timeout=10.0)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU)), 0.0)
    assert emu.emit(0.0, 9.0)  # still associated
    assert [m.kind for m in messages(emu.emit(10.5, 11.0))] == ["abort"]
    assert emu.ended[-1] == (10.5, "timeout") and emu.emit(11.0, 20.0) == b""
    emu = associated(typical, speed=4.0)  # real seconds: 40 s of session time at speed 4
    assert emu.timeout == 40.0
    emu.drop()
    assert [m.kind for m in messages(emu.emit(1.0, 2.0))] == ["abort"]


def nibp_items(emu: IntellivueEmulator, t0: float, t1: float) -> list[NibpReading]:
    parser = IntellivueParser("mp90")
    parser.feed(emu._create_event(t0), ORIGIN)  # the MDS clock
    out = []
    t = t0
    while t < t1:
        chunk = emu.emit(t, t + 1.0)
        out += parser.feed(chunk, ORIGIN.shifted(t + 1.0)) if chunk else []
        t += 1.0
    return [i for i in out if isinstance(i, NibpReading)]


def test_nibp_is_one_reading_per_cuff_measurement(typical) -> None:
    emu = associated(typical, timeout=1e6)  # a host that keeps the association (not played)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU, 1e4)), 0.0)
    readings = [r for r in typical.nibp_readings if r.t < 1000]
    # While the cuff measures, the object says so and holds the last reading.
    first = readings[0]
    measuring = dict(emu.nibp_attrs(first.t - 10.0))
    cmpd = measuring[nom.NOM_ATTR_NU_CMPD_VAL_OBS]
    assert struct.unpack_from(">H", cmpd, 6)[0] & nom.MSMT_ONGOING
    got = nibp_items(emu, 0.0, 1000.0)
    assert [(r.systolic, r.diastolic, r.mean) for r in got] == [
        (x.systolic, x.diastolic, x.mean) for x in readings
    ]
    # Stamped when the cuff finished (the monitor's clock placed on the host's).
    for r, x in zip(got, readings, strict=True):
        assert r.stamp.mono == pytest.approx(ORIGIN.mono + x.t, abs=1.1)


def test_a_failed_cuff_measurement_is_one_failed_reading() -> None:
    session = KapSession(load_scenario("cuff-failure"), seed=1)
    failed = [r for r in session.nibp_readings if r.systolic is None]
    assert failed
    emu = associated(session, timeout=1e6)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU, 1e5)), 0.0)
    end = failed[0].t + 5
    got = nibp_items(emu, 0.0, end)
    expected = [r for r in session.nibp_readings if r.t < end - 1.1]
    assert len(got) == len(expected)
    assert got[-1].systolic is None and Flag.MEASUREMENT_FAILED in got[-1].flags


def test_the_round_trip_values_are_the_scenarios(typical) -> None:
    emu = associated(typical, timeout=1e6)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(8, 1, nom.NOM_MOC_VMO_METRIC_NU, 1e4)), 0.0)
    emu.on_host_bytes(frame(ivmsg.ext_poll_request(9, 2, nom.NOM_MOC_VMO_METRIC_SA_RT, 1e4)), 0.0)
    stream = emu.emit(0.0, 30.0)
    parser, items = decode(stream)
    assert parser.stats.checksum_errors == parser.stats.framing_errors == 0
    spo2 = [i for i in items if isinstance(i, Numeric) and i.code is Code.SPO2]
    assert len(spo2) == 29
    for k, n in enumerate(spo2, start=1):
        v = typical.vitals(k * nom.NUMERIC_PERIOD)
        assert n.value == round(v.spo2, 1)
    waves = [i for i in items if isinstance(i, WaveformBlock) and i.code is Code.PLETH]
    samples = np.concatenate([w.samples for w in waves])
    truth = np.rint(np.clip(typical.pleth(0.0, len(samples), 125.0), 0, 1) * 4095)
    assert {w.fs for w in waves} == {125.0} and np.array_equal(samples, truth)
    pvc = [i for i in items if isinstance(i, DeviceValue)]
    assert {p.key for p in pvc} == {"INTELLIVUE_ECG_V_P_C_CNT"}


# --- driver, registry, command line ---------------------------------------------------------------


def test_the_registry_names_the_driver_with_its_wire_settings() -> None:
    cls = get_driver_class("intellivue")
    assert cls is IntellivueDriver and cls.emulator_class is IntellivueEmulator
    assert cls.serial_settings.baudrate == 115200 and cls.serial_settings.parity == "N"
    driver = cls(DeviceSpec.parse("intellivue+19200@/dev/null-monitor"), lambda i: None)
    assert driver.serial_settings.baudrate == 19200
    with pytest.raises(UserError, match="unknown option"):
        cls(DeviceSpec.parse("intellivue+9600@/dev/null-monitor"), lambda i: None)
    driver = cls(DeviceSpec.parse("intellivue@/dev/null-monitor"), lambda i: None)
    assert driver.greeting() == frame(ASSOCIATION_REQUEST) and driver.farewell() == b""


def test_the_driver_plays_the_host_against_the_emulator(typical) -> None:
    """The session without a port: greeting, replies, keep-alives, drop, release."""
    items: list = []
    driver = IntellivueDriver(DeviceSpec.parse("intellivue@/dev/null-monitor"), items.append)
    emu = IntellivueEmulator(typical)
    host = driver.greeting()
    t = 0.0
    for _ in range(40):
        answer = emu.on_host_bytes(host, t) if host else b""
        answer += emu.emit(t, t + 1.0)
        items += driver.parser.feed(answer, ORIGIN.shifted(t + 1.0))
        host = driver.reply()
        t += 1.0
        if t % 3 == 0:
            host += driver.keep_alive()
        if t == 20.0:
            emu.drop()
    assert emu.associations == 2 and driver.associations == 2
    assert [why for _, why in emu.ended] == ["abort"]
    kinds = [k for _, k, _ in emu.received]
    assert kinds[:2] == ["associate", "mds-create-result"] and kinds.count("associate") == 2
    assert kinds.count("poll-request") >= 2 * 12  # renewed every 3 s: the keep-alive
    assert driver.farewell() == frame(RELEASE_REQUEST)
    assert messages(emu.on_host_bytes(frame(RELEASE_REQUEST), t))[0].kind == "release-response"
    spo2 = [i for i in items if isinstance(i, Numeric) and i.code is Code.SPO2]
    assert len(spo2) >= 30
    states = [i.state for i in items if hasattr(i, "state")]
    assert ConnectionState.RECONNECTING in states


def test_the_driver_associates_again_when_the_monitor_falls_silent(typical) -> None:
    driver = IntellivueDriver(DeviceSpec.parse("intellivue@/dev/null-monitor"), lambda i: None)
    emu = IntellivueEmulator(typical)
    reply = emu.on_host_bytes(driver.greeting(), 0.0)
    driver.parser.feed(reply, ORIGIN)
    emu.on_host_bytes(driver.reply(), 0.0)
    assert driver.polling and emu.confirmed
    sent = [driver.keep_alive() for _ in range(3)]  # no frame in three periods
    assert [parse_message(ivwire.unescape(f[1:-1])[4:-2]).kind for f in wire_frames(sent[-1])] == [
        "abort",
        "associate",
    ]
    assert not driver.polling


def test_kapmonitor_decode_reads_the_real_mp90_bytes(tmp_path: Path) -> None:
    path = DATA / "1A.wire.DERIVED.bin"
    records = decode_cli("intellivue", path)
    spo2 = [r for r in records if r.get("code") == Code.SPO2.value]
    assert len(spo2) == 62 and all(99.0 <= r["value"] <= 100.0 for r in spo2)
    waves = [r for r in records if r.get("code") == Code.PLETH.value]
    assert len(waves) == 243 and all(r["fs"] == 125.0 and len(r["samples"]) == 32 for r in waves)
    assert {r["key"] for r in records if "key" in r} == {
        "INTELLIVUE_ECG_AMPL_ST_I",
        "INTELLIVUE_ECG_V_P_C_CNT",
    }
    t = [r["t"] for r in spo2]
    assert t == sorted(t) and 50 < t[-1] - t[0] < 80


# --- the real driver against the emulator over a pty ----------------------------------------------


@pytest.fixture
def pipeline():
    hub = Hub()
    collector = Collector(hub.subscribe("test", maxsize=1_000_000))
    endpoint = TeeEndpoint()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    drivers: list[IntellivueDriver] = []

    def start(emulator: IntellivueEmulator, speed: float, at: float = 0.0) -> IntellivueDriver:
        driver = IntellivueDriver(DeviceSpec.parse(f"intellivue@{endpoint.path}"), hub.publish)
        driver.open()
        driver.start()
        drivers.append(driver)
        server = threading.Thread(
            target=serve,
            args=(emulator, endpoint),
            kwargs={"speed": speed, "stop": stop, "start": at},
        )
        server.start()
        threads.append(server)
        return driver

    yield start, collector, endpoint, stop
    for d in drivers:
        d.stop()
    stop.set()
    for t in threads:
        t.join(10)
    endpoint.close()


@PTY
def test_round_trip_over_a_pty_association_polls_nibp_drop_and_release(pipeline) -> None:
    start, collector, endpoint, _ = pipeline
    session = KapSession(load_scenario("typical"), seed=5)
    first = session.nibp_readings[0]
    emulator = IntellivueEmulator(session, speed=4.0)
    begin = first.t - session.scenario.nibp.measure_s - 4.0  # just before the cuff starts
    driver = start(emulator, 4.0, begin)

    def nibp(items):
        return [i for i in items if isinstance(i, NibpReading)]

    assert collector.wait_for(lambda items: len(nibp(items)) >= 1, timeout=40)
    reading = nibp(collector.items)[0]
    assert (reading.systolic, reading.diastolic, reading.mean) == (
        first.systolic,
        first.diastolic,
        first.mean,
    )
    assert emulator.associations == 1 and driver.associations == 1
    kinds = [k for _, k, _ in emulator.received]
    assert kinds[:3] == ["associate", "mds-create-result", "set"]
    assert {c for _, k, c in emulator.received if k == "poll-request"} == {6, 9}
    # The monitor drops the association: the driver associates again and data flows on.
    n_before = len(collector.items)
    emulator.drop()
    assert collector.wait_for(lambda items: driver.associations == 2, timeout=20)
    assert collector.wait_for(
        lambda items: (
            any(isinstance(i, Numeric) for i in items[n_before:])
            and len([i for i in items[n_before:] if isinstance(i, Numeric) and i.code is Code.SPO2])
            >= 3
        ),
        timeout=20,
    )
    assert emulator.associations == 2 and ConnectionState.RECONNECTING in collector.states()
    # The same NIBP reading is not reported again after the new association.
    assert len(nibp(collector.items)) == 1
    # What the host decoded is what the device sent (same values in the same order).
    spo2 = [i.value for i in collector.items if isinstance(i, Numeric) and i.code is Code.SPO2]
    truth = {round(session.vitals(begin + s).spo2, 1) for s in np.arange(0, 200, 0.5)}
    assert spo2 and set(spo2) <= truth | {None}
    assert driver.parser.stats.checksum_errors == 0 and driver.parser.stats.framing_errors == 0
    waves = [i for i in collector.items if isinstance(i, WaveformBlock)]
    assert waves and {(w.code, w.fs) for w in waves} == {(Code.PLETH, 125.0), (Code.CO2, 62.5)}
    # Release on close.
    driver.stop()
    deadline = time.monotonic() + 5
    while emulator.associated and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [k for _, k, _ in emulator.received][-1] == "release-request"
    assert not emulator.associated and emulator.ended[-1][1] == "release"
    assert endpoint.dropped == 0
