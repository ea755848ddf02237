"""Breathing values from the multiparameter monitors (issue 17): Philips IntelliVue's RR,
airway RR, EtCO2, inspired CO2 and CO2 wave; GE/Datex S/5's CO2 group and CO2 wave. Golden
bytes from the documented layouts, round trips through each emulator to the simulated patient.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest

from devices.protocols.emulation import tick_at
from devices.protocols.ge_s5 import GeS5Driver, GeS5Emulator, GeS5Parser
from devices.protocols.ge_s5.records import (
    PHDB_REQUEST,
    WAVE_REQUEST,
    WAVE_REQUEST_CO2,
    BasicClass,
    decode_basic,
    encode_basic,
    phdb_record,
)
from devices.protocols.ge_s5.wire import (
    CO2_OFF,
    DATA_INVALID,
    STATUS_ACTIVE,
    STATUS_EXISTS,
    frame,
)
from devices.protocols.intellivue import nomenclature as nom
from devices.protocols.intellivue.emulator import CO2_SCALE, IntellivueEmulator
from devices.protocols.intellivue.wire import encode_float
from devices.registry import get_driver_class
from devices.sim.physiology import KapSession
from devices.sim.scenario import load_scenario
from kapmonitor.core.codes import Code
from kapmonitor.core.device_spec import DeviceSpec
from kapmonitor.core.model import Flag, Numeric, Stamp, WaveformBlock
from tests.protocol_helpers import ORIGIN
from tests.test_parser_contract import check_contract, emulated, feed, new_parser

ON = STATUS_EXISTS | STATUS_ACTIVE


def numerics(items: list, code: Code) -> list[Numeric]:
    return [i for i in items if isinstance(i, Numeric) and i.code is code]


def waves(items: list, code: Code) -> list[WaveformBlock]:
    return [i for i in items if isinstance(i, WaveformBlock) and i.code is code]


def decoded(name: str, scenario: str, start: float, seconds: float = 60.0):
    """What the real driver's parser makes of the emulator in a session, and the session."""
    reads, session = emulated(name, scenario, start, seconds)
    fed = feed(new_parser(name), [(c, ORIGIN.shifted(t)) for c, t in reads])
    return check_contract(fed), session


def session_time(item, start: float) -> float:
    return start + item.stamp.mono - ORIGIN.mono


# --- IntelliVue ----------------------------------------------------------------------------------


def test_intellivue_ids_are_the_documented_ones() -> None:
    # NOM_RESP_RATE 20490, NOM_AWAY_RESP_RATE 20498, NOM_AWAY_CO2 20652, _ET 20656,
    # _INSP_MIN 20666 (VSCaptureMP, OpenICE); the SCADA code is partition 2 << 16 | term.
    for physio, code in (
        (20490, Code.RESP_RATE),
        (20498, Code.AWAY_RESP_RATE),
        (20656, Code.CO2_ET),
        (20666, Code.CO2_INSP_MIN),
    ):
        assert nom.PHYSIO_CODES[physio] is code
        assert code.info.mdc_code == 2 << 16 | physio
    assert nom.WAVE_CODES[20652] is Code.CO2 and Code.CO2.info.mdc_code == 2 << 16 | 20652
    assert not {0x500A, 0x5012, 0x50B0} & set(nom.PHYSIO_NAMES)  # coded, not vendor values


def test_intellivue_emulator_encodes_breathing_as_the_layout_says() -> None:
    session = KapSession(load_scenario("typical"), seed=5)
    emu = IntellivueEmulator(session)
    obs = dict(emu.numerics(600.0))
    b = session.breathing(600.0)
    # NuObsValue: physio u16, state u16, unit u16 (NOM_DIM_RESP_PER_MIN 0x0AE0), FLOAT.
    ((attr, rr),) = obs[0x8301]
    assert attr == nom.NOM_ATTR_NU_VAL_OBS
    assert rr == struct.pack(">HHHI", 0x500A, 0, 0x0AE0, round(b.resp_rate))
    ((_, et),) = obs[0x8303]
    assert et == struct.pack(">HHHI", 0x50B0, 0, 0x0F20, round(b.etco2))
    # The CO2 wave: physio 0x50AC, state, length, u16 counts on 0..4000 = 0..100 mmHg.
    sa = emu.co2_value(600.0)
    physio, state, length = struct.unpack_from(">HHH", sa)
    assert (physio, state, length) == (0x50AC, 0, 32)
    counts = np.frombuffer(sa[6:], dtype=">u2")
    assert np.allclose(counts * 100 / 4000, session.capnogram(600.0, 16, 62.5), atol=100 / 8000)


@pytest.mark.parametrize(
    ("scenario", "start"), [("respiratory-depression", 1140.0), ("apnea", 1780.0)]
)
def test_intellivue_round_trip_breathing_is_the_patients(scenario: str, start: float) -> None:
    items, session = decoded("intellivue", scenario, start)
    for code in (Code.RESP_RATE, Code.AWAY_RESP_RATE, Code.CO2_ET, Code.CO2_INSP_MIN):
        got = numerics(items, code)
        assert len(got) >= 50, code
        for n in got:
            # The result of grid point k shows the patient at k * 1.024 s.
            t = round(session_time(n, start) / nom.NUMERIC_PERIOD) * nom.NUMERIC_PERIOD
            b = session.breathing(t)
            truth = {
                Code.RESP_RATE: b.resp_rate,
                Code.AWAY_RESP_RATE: b.resp_rate,
                Code.CO2_ET: b.etco2,
                Code.CO2_INSP_MIN: b.fico2,
            }[code]
            assert n.value == (None if truth is None else round(truth)), (n, t)
    co2 = waves(items, Code.CO2)
    assert co2 and {w.fs for w in co2} == {62.5}
    assert not any(Flag.QUESTIONABLE in w.flags for w in co2[1:])  # scaled after the first
    if scenario == "apnea":
        apnoea = [n for n in numerics(items, Code.RESP_RATE) if n.value == 0]
        assert 28 <= len(apnoea) <= 31
        no_end_tide = [n for n in numerics(items, Code.CO2_ET) if n.value is None]
        assert len(no_end_tide) == len(apnoea)


def test_intellivue_co2_wave_follows_the_capnogram() -> None:
    items, session = decoded("intellivue", "typical", 1200.0, 30.0)
    blocks = waves(items, Code.CO2)[2:]  # the first result carries the scale
    samples = np.concatenate([w.samples for w in blocks])
    # The samples are the capnogram's, each at its own time: the block's stamp (the monitor's
    # relative time, placed on the host clock) is near the session time.
    stamped = session_time(blocks[0], 1200.0)
    grid = session.capnogram(stamped - 1.0, len(samples) + 125, 62.5)
    errors = [np.abs(grid[k : k + len(samples)] - samples).max() for k in range(126)]
    best = int(np.argmin(errors))
    assert errors[best] <= 0.0126  # 0..4000 counts for 0..100 mmHg, rounded
    assert abs(best / 62.5 - 1.0) <= 0.5  # placed within half a second (the pleth's way)
    assert samples.max() > 25 and samples.min() < 2  # breaths, and inspiration near 0


def test_intellivue_sampling_line_off_is_invalid_co2_while_the_chest_breathes() -> None:
    start = 25 * 60.0 + 10  # the line is off from 25 min (15 min after the dose) for 2 min
    items, _ = decoded("intellivue", "sampling-line-off", start, 30.0)
    for n in numerics(items, Code.CO2_ET) + numerics(items, Code.AWAY_RESP_RATE):
        assert n.value is None and Flag.MEASUREMENT_FAILED in n.flags
    chest = numerics(items, Code.RESP_RATE)
    assert chest and all(n.value is not None and n.value > 5 for n in chest)
    assert all(np.isnan(w.samples).all() for w in waves(items, Code.CO2))
    assert all(n.value is not None for n in numerics(items, Code.SPO2))


class _KpaMonitor(IntellivueEmulator):
    """A monitor whose CO2 unit is set to kPa."""

    def breathing(
        self, t: float, nu: Callable[[int, int, int, float | None, int], bytes]
    ) -> list[tuple[int, list[tuple[int, bytes]]]]:
        out = []
        for handle, attrs in super().breathing(t, nu):
            attr, value = attrs[0]
            physio, state, _, _ = struct.unpack(">HHHI", value)
            mmhg = self.session.breathing(t).etco2
            if physio == nom.NOM_AWAY_CO2_ET and mmhg is not None:
                kpa = round(mmhg / nom.KPA_TO_MMHG, 1)
                value = struct.pack(">HHHI", physio, state, nom.UNIT_KPA, encode_float(kpa, -1))
            out.append((handle, [(attr, value)]))
        return out


def test_intellivue_co2_in_kpa_is_converted_to_mmhg() -> None:
    session = KapSession(load_scenario("typical"), seed=5)
    emu = _KpaMonitor(session)
    driver = get_driver_class("intellivue")(DeviceSpec.parse("intellivue@loop://"), lambda i: None)
    host = driver.greeting()
    parser = driver.parser
    items: list = []
    for k in range(40):
        t0, t1 = 600 + k / 4, 600 + (k + 1) / 4
        if k % 8 == 0:
            host += driver.keep_alive()
        sent = (emu.on_host_bytes(host, t0) if host else b"") + emu.emit(t0, t1)
        items += parser.feed(sent, ORIGIN.shifted(t1 - 600))
        host = driver.reply()
    et = [n for n in numerics(items, Code.CO2_ET) if n.value is not None]
    assert et
    for n in et:
        truth = session.breathing(round((n.stamp.mono - ORIGIN.mono + 600) / 1.024) * 1.024).etco2
        assert abs(n.value - truth) <= 0.5  # 0.1 kPa is 0.75 mmHg: rounded on the way


def test_intellivue_scale_matches_the_emulators() -> None:
    lo, hi, lo_s, hi_s = CO2_SCALE
    assert (lo, hi, lo_s, hi_s) == (0.0, 100.0, 0, 4000)


# --- GE / Datex S/5 ------------------------------------------------------------------------------


def test_ge_co2_group_golden_bytes() -> None:
    # CO2 group at 132: status u32, label u16, et i16 @138, fi i16 @140, rr i16 @142, amb i16
    # @144; et and fi in 1/100 %, amb in 1/10 mmHg (reference table, VSCapture's basic_phdb).
    b = BasicClass(co2_status=ON, co2_et=500, co2_fi=12, co2_rr=14, co2_amb_press=7600)
    data = encode_basic(b)
    assert data[CO2_OFF : CO2_OFF + 14] == bytes.fromhex("030000000000F4010C000E00B01D")
    assert decode_basic(data) == b


def _phdb_items(basic: BasicClass) -> list:
    parser = GeS5Parser("ge")
    parser.begin(ORIGIN)
    return parser.feed(frame(phdb_record(basic, 1_623_330_374)), ORIGIN.shifted(1.0))


def test_ge_co2_percent_becomes_mmhg_with_the_ambient_pressure() -> None:
    items = _phdb_items(
        BasicClass(co2_status=ON, co2_et=500, co2_fi=12, co2_rr=14, co2_amb_press=7600)
    )
    assert [
        (n.code, n.value, n.flags)
        for n in items
        if isinstance(n, Numeric)
        and n.code in (Code.CO2_ET, Code.CO2_INSP_MIN, Code.AWAY_RESP_RATE)
    ] == [
        (Code.CO2_ET, 38.0, frozenset()),  # 5.00 % of 760 mmHg
        (Code.CO2_INSP_MIN, 0.9, frozenset()),
        (Code.AWAY_RESP_RATE, 14, frozenset()),
    ]
    # At altitude the same 5 % is less CO2 pressure: 5 % of 630 mmHg.
    items = _phdb_items(BasicClass(co2_status=ON, co2_et=500, co2_rr=14, co2_amb_press=6300))
    assert numerics(items, Code.CO2_ET)[0].value == 31.5


def test_ge_without_a_co2_module_there_are_no_co2_values() -> None:
    items = _phdb_items(BasicClass(co2_amb_press=7600))  # status 0: no module
    assert not numerics(items, Code.CO2_ET) and not numerics(items, Code.AWAY_RESP_RATE)


@pytest.mark.parametrize(
    ("basic", "et_flags", "rr"),
    [
        # The line off: the group exists but is not active, its values invalid.
        (BasicClass(co2_status=STATUS_EXISTS, co2_amb_press=7600), {Flag.SENSOR_OFF}, None),
        # No breath: rate 0 and no end tide.
        (BasicClass(co2_status=ON, co2_rr=0, co2_fi=0, co2_amb_press=7600),
         {Flag.SEARCHING, Flag.NO_BREATH}, 0),
        # No ambient pressure: a % with nothing to convert it with is no value.
        (BasicClass(co2_status=ON, co2_et=500, co2_rr=14, co2_amb_press=DATA_INVALID),
         {Flag.QUESTIONABLE}, 14),
    ],
)  # fmt: skip
def test_ge_co2_flags(basic: BasicClass, et_flags: set, rr) -> None:
    items = _phdb_items(basic)
    (et,) = numerics(items, Code.CO2_ET)
    assert et.value is None and et.flags == et_flags
    assert numerics(items, Code.AWAY_RESP_RATE)[0].value == rr


@pytest.mark.parametrize(("scenario", "start"), [("apnea", 1780.0), ("sampling-line-off", 1490.0)])
def test_ge_round_trip_breathing_is_the_patients(scenario: str, start: float) -> None:
    items, session = decoded("ge-s5", scenario, start)
    et = numerics(items, Code.CO2_ET)
    assert len(et) >= 10
    for n in et + numerics(items, Code.AWAY_RESP_RATE):
        b = session.breathing(round(session_time(n, start)))
        truth = b.etco2 if n.code is Code.CO2_ET else b.resp_rate
        if truth is None:
            assert n.value is None
        elif n.code is Code.CO2_ET:
            assert abs(n.value - truth) <= 0.1  # 1/100 % of 760 mmHg, then rounded to 0.1
        else:
            assert n.value == round(truth)
    assert not waves(items, Code.CO2)  # not asked for by default


def test_ge_co2_wave_with_the_option() -> None:
    driver = GeS5Driver(DeviceSpec.parse("ge-s5+co2@/dev/null-monitor"), lambda i: None)
    assert driver.greeting() == PHDB_REQUEST + WAVE_REQUEST_CO2
    plain = GeS5Driver(DeviceSpec.parse("ge-s5@/dev/null-monitor"), lambda i: None)
    assert plain.greeting() == PHDB_REQUEST + WAVE_REQUEST
    session = KapSession(load_scenario("typical"), seed=5)
    emu = GeS5Emulator(session)
    # Asked at 600.5 s: the first wave record (600.75) comes before the first displayed values
    # (601), so before the ambient pressure is known.
    assert emu.on_host_bytes(driver.greeting(), 600.5) == b""
    data = emu.emit(600.5, 630.5)
    parser = GeS5Parser("ge")
    parser.begin(Stamp(0.0, 0.0))
    items = parser.feed(data, Stamp(30.0, 30.0))
    co2 = waves(items, Code.CO2)
    assert co2 and {w.fs for w in co2} == {25.0}
    scaled = [w for w in co2 if not np.isnan(w.samples).all()]
    assert np.isnan(co2[0].samples).all() and Flag.QUESTIONABLE in co2[0].flags  # before amb
    samples = np.concatenate([w.samples for w in scaled])
    assert len(samples) >= 25 * 27
    first = tick_at(600.5, 25.0) + sum(len(w.samples) for w in co2[: co2.index(scaled[0])])
    truth = session.capnogram(first / 25.0, len(samples), 25.0)
    np.testing.assert_allclose(samples, truth, atol=0.04)
