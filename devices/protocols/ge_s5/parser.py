"""The S/5 parser: frames to displayed values, one NIBP reading per cuff measurement, and pleth."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.protocols.base import Parser, ParserStats, SerialSettings
from devices.protocols.ge_s5.records import BasicClass, decode_basic
from devices.protocols.ge_s5.wire import (
    _DESC,
    _HEADER,
    _I16,
    _U16,
    _WF_HDR,
    CLASS_BASIC,
    CO2_DIVISOR,
    CO2_FS,
    DATA_INVALID,
    DATA_INVALID_LIMIT,
    DATA_OVER_RANGE,
    DATA_UNDER_RANGE,
    ECG_ARTIFACT,
    ECG_LEARNING,
    ECG_NOISE,
    EOL,
    FLAG,
    HEADER_LEN,
    LINE_RATE,
    MAX_BODY,
    MAX_RECORD,
    MT_PHDB,
    MT_WAVE,
    NIBP_CALIBRATING,
    NIBP_MEASURING,
    NIBP_OLD,
    PH_DISPL,
    PHDB_SUBRECORD_LEN,
    PLETH_DIVISOR,
    PLETH_FS,
    STATUS_ACTIVE,
    STATUS_EXISTS,
    WAVE_CONTROL,
    WF_CO2,
    WF_HEADER_LEN,
    WF_PLETH,
    WF_STATUS_GAP,
    checksum,
    unescape,
)
from kapmonitor.core.codes import Code
from kapmonitor.core.model import (
    DeviceValue,
    Flag,
    Flags,
    Measurement,
    NibpReading,
    Numeric,
    Stamp,
    WaveformBlock,
)


@dataclass
class GeS5Stats(ParserStats):
    """Counters of the S/5 parser; ``bytes_in == bytes_in_frames + bytes_discarded + pending``."""

    bytes_in_frames: int = 0  #: flags and the bytes of good frames
    records_phdb: int = 0
    records_wave: int = 0
    records_other: int = 0  #: alarms, requests echoed back, unknown main types
    subrecords_bad: int = 0  #: a subrecord whose offset or length does not fit its record


def _marker_flag(raw: int, active: bool) -> Flag:
    if raw == DATA_INVALID:
        return Flag.SEARCHING if active else Flag.SENSOR_OFF
    if raw in (DATA_UNDER_RANGE, DATA_OVER_RANGE):
        return Flag.OUT_OF_RANGE
    return Flag.QUESTIONABLE


def value_of(raw: int, divisor: int, active: bool) -> tuple[float | None, Flags]:
    """A wire value in its unit (``raw / divisor``), or None with the reason when it is a
    special value; ``active`` is the group's "measurement active" status bit."""
    if raw > DATA_INVALID_LIMIT:
        return (raw if divisor == 1 else raw / divisor), frozenset()
    return None, frozenset((_marker_flag(raw, active),))


def nibp_value_of(raw: int) -> tuple[float | None, Flags]:
    """An NIBP value in mmHg; an invalid one means the cuff gave no such value."""
    if raw > DATA_INVALID_LIMIT:
        return raw / 100, frozenset()
    if raw == DATA_INVALID:
        return None, frozenset((Flag.MEASUREMENT_FAILED,))
    return None, frozenset((_marker_flag(raw, True),))


@dataclass
class _NibpState:
    """What the parser remembers between records to find new cuff measurements."""

    seen: bool = False  #: a record with an NIBP group has been read
    measuring: bool = False  #: a measuring phase was seen since the last reading
    key: tuple[int, int, int] | None = None
    old: bool = False


class GeS5Parser(Parser):
    """Decodes what an S/5-family monitor sends: displayed values and the pleth wave."""

    protocol: ClassVar[str] = "ge-s5"
    SERIAL: ClassVar[SerialSettings] = SerialSettings(19200, 8, "E", 1, rtscts=True)

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: GeS5Stats = GeS5Stats()
        self._buf = b""  #: bytes after the last flag
        self._synced = False  #: a flag has been seen
        self._skipping = False  #: the piece being received is already known to be too long
        self._good_before = False
        self._lost = False
        self._nibp = _NibpState()
        #: ``stamp.mono`` of the latest good record of each kind (for the driver's re-requests).
        self.last_phdb: float | None = None
        self.last_wave: float | None = None
        #: The ambient pressure (mmHg) of the latest CO2 group, to turn CO2 % into mmHg.
        self._amb_mmhg: float | None = None
        #: With guessed arrivals: the record clock's reference, (``r_time``, its host stamp),
        #: and the latest record's stamp (see :meth:`_on_record_time`).
        self._ref: tuple[int, Stamp] | None = None
        self._last_at: Stamp | None = None
        #: With guessed arrivals: ``mono`` where each wave's previous block ended.
        self._wave_end: dict[int, float] = {}

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        out: list[Measurement] = []
        stats = self.stats
        if not self._synced:
            i = data.find(FLAG)
            if i < 0:
                stats.bytes_discarded += len(data)  # the end of a frame we joined late
                return out
            stats.bytes_discarded += i
            data = data[i:]
            self._synced = True
            self._buf = b""
            stats.bytes_in_frames += 1
            data = data[1:]
        b = self._buf + data
        n = len(b)
        pos = 0
        find = b.find
        while True:
            j = find(FLAG, pos)
            if j < 0:
                break
            stats.bytes_in_frames += 1  # the flag itself
            if j > pos:
                if self._skipping:
                    stats.bytes_discarded += j - pos
                    self._skipping = False
                else:
                    at = stamp.shifted(-self.back(n - 1 - j, LINE_RATE)) if j != n - 1 else stamp
                    self._piece(b[pos:j], at, out)
            pos = j + 1
        rest = b[pos:]
        if len(rest) > MAX_BODY:
            # No valid frame is this long: drop it now to bound memory, and the rest of it when
            # its flag comes, as one error (the same count for any chunking).
            if not self._skipping:
                self._bad()
                stats.framing_errors += 1
            stats.bytes_discarded += len(rest)
            self._skipping = True
            rest = b""
        self._buf = rest
        return out

    # --- one piece between two flags ------------------------------------------------------------

    def _bad(self) -> None:
        if self._good_before:
            self._lost = True

    def _piece(self, body: bytes, at: Stamp, out: list[Measurement]) -> None:
        stats = self.stats
        record = unescape(body) if len(body) <= MAX_BODY else None
        if record is None or not HEADER_LEN + 1 <= len(record) <= MAX_RECORD + 1:
            stats.framing_errors += 1
            stats.bytes_discarded += len(body)
            self._bad()
            return
        chk = record[-1]
        record = record[:-1]
        if checksum(record) != chk:
            stats.checksum_errors += 1
            stats.bytes_discarded += len(body)
            self._bad()
            return
        if _I16.unpack_from(record, 0)[0] != len(record):
            stats.framing_errors += 1
            stats.bytes_discarded += len(body)
            self._bad()
            return
        stats.frames_ok += 1
        stats.bytes_in_frames += len(body)
        if self._lost:
            stats.resyncs += 1
            self._lost = False
        self._good_before = True
        if self.guessed_arrivals:
            at = self._on_record_time(_HEADER.unpack_from(record, 0)[4], at)  # r_time
        try:
            self._record(record, at, out)
        except (struct.error, ValueError, IndexError):  # pragma: no cover - bounds are checked
            stats.subrecords_bad += 1

    def _on_record_time(self, r_time: int, at: Stamp) -> Stamp:
        """A record's stamp on the monitor's record time (whole seconds), for guessed arrivals
        (a plain file): the first good record anchors the clock where its bytes put it, each
        later one sits ``r_time`` minus the anchor's seconds after it, so the monitor's 5-s
        cadence and any gap in what it sent come out as they were.

        A record time equal to or before the latest one holds at the latest stamp: several
        wave records share each second (the time has one-second resolution), so an equal time
        is normal and must not push the clock on; a time set back (the monitor's clock was
        reset) holds rather than moving on by the record's bytes at the byte rate, since the
        byte rate is only the average of the requested records, and it becomes the new
        reference, so the records after it follow the monitor's clock again. Time never runs
        backwards."""
        ref, last = self._ref, self._last_at
        if ref is None or last is None:
            self._ref, self._last_at = (r_time, at), at
            return at
        d = r_time - ref[0]
        stamp = Stamp(ref[1].mono + d, ref[1].wall + d)
        if stamp.mono < last.mono:
            self._ref, stamp = (r_time, last), last
        self._last_at = stamp
        return stamp

    def _wave_start(self, typ: int, count: int, fs: float, status: int, at: Stamp) -> Stamp:
        """Where a wave block's first sample sits: live, counted back from the record's end;
        with guessed arrivals, right after the same wave's previous block (the samples' own
        clock, ``fs``), unless the record time ``at`` is more than its one-second resolution
        past that end or the monitor set the gap bit: then samples were lost, and the block
        ends at the record time, so a gap stays a gap. Never before the previous block's end."""
        start = at.shifted(-count / fs)
        if not self.guessed_arrivals:
            return start
        end = self._wave_end.get(typ)
        if end is not None and (
            start.mono < end or (not status & WF_STATUS_GAP and at.mono - end <= 1.0 + count / fs)
        ):
            start = Stamp(end, start.wall + (end - start.mono))
        self._wave_end[typ] = start.mono + count / fs
        return start

    def _record(self, record: bytes, at: Stamp, out: list[Measurement]) -> None:
        stats = self.stats
        (maintype,) = _I16.unpack_from(record, 14)
        data = memoryview(record)[HEADER_LEN:]
        size = len(data)
        if maintype == MT_PHDB:
            stats.records_phdb += 1
            self.last_phdb = at.mono
            for k in range(8):
                off, typ = _DESC.unpack_from(record, 16 + 3 * k)
                if typ == EOL:
                    break
                if typ != PH_DISPL:
                    continue  # trends and aux info: not asked for, and would repeat values
                if off < 0 or off + PHDB_SUBRECORD_LEN > size:
                    stats.subrecords_bad += 1
                    continue
                (cl,) = _U16.unpack_from(data, off + PHDB_SUBRECORD_LEN - 2)
                if (cl >> 8) & 0xF == CLASS_BASIC:
                    self._basic(decode_basic(data, off + 4), at, out)
        elif maintype == MT_WAVE:
            stats.records_wave += 1
            self.last_wave = at.mono
            for k in range(8):
                off, typ = _DESC.unpack_from(record, 16 + 3 * k)
                if typ == EOL:
                    break
                if off < 0 or off + WF_HEADER_LEN > size:
                    stats.subrecords_bad += 1
                    continue
                act_len, status, _label = _WF_HDR.unpack_from(data, off)
                end = off + WF_HEADER_LEN + 2 * act_len
                if act_len < 0 or end > size:
                    stats.subrecords_bad += 1
                    continue
                if typ == WF_PLETH and act_len:
                    start = self._wave_start(typ, act_len, PLETH_FS, status, at)
                    self._pleth(data, off + WF_HEADER_LEN, act_len, start, out)
                elif typ == WF_CO2 and act_len:
                    start = self._wave_start(typ, act_len, CO2_FS, status, at)
                    self._co2_wave(data, off + WF_HEADER_LEN, act_len, start, out)
        else:
            stats.records_other += 1

    def _pleth(
        self, data: memoryview, start: int, count: int, first: Stamp, out: list[Measurement]
    ) -> None:
        raw = np.frombuffer(data, dtype="<i2", count=count, offset=start)
        samples = raw / PLETH_DIVISOR
        flags: Flags = frozenset()
        bad = raw <= WAVE_CONTROL
        if bad.any():
            samples[bad] = np.nan
            flags = frozenset((Flag.SENSOR_OFF,))
        out.append(WaveformBlock(self.source, Code.PLETH, first, PLETH_FS, samples, flags))

    def _co2_wave(
        self, data: memoryview, start: int, count: int, first: Stamp, out: list[Measurement]
    ) -> None:
        """CO2 samples in 1/100 % as mmHg, with the ambient pressure the monitor last sent; none
        known yet: NaN, flagged (a % is not a partial pressure without it)."""
        raw = np.frombuffer(data, dtype="<i2", count=count, offset=start)
        flags: Flags = frozenset()
        amb = self._amb_mmhg
        if amb is None:
            samples = np.full(count, np.nan)
            flags = frozenset((Flag.QUESTIONABLE,))
        else:
            samples = raw * (amb / (100.0 * CO2_DIVISOR))
            bad = raw <= WAVE_CONTROL
            if bad.any():
                samples[bad] = np.nan
                flags = frozenset((Flag.SENSOR_OFF,))
        out.append(WaveformBlock(self.source, Code.CO2, first, CO2_FS, samples, flags))

    def _co2_group(self, b: BasicClass, at: Stamp, out: list[Measurement]) -> None:
        """EtCO2, FiCO2 (1/100 %) and the airway rate, only from a monitor with a CO2 module."""
        if not b.co2_status & STATUS_EXISTS:
            return
        amb, _ = value_of(b.co2_amb_press, 10, True)
        self._amb_mmhg = amb if amb is not None and 400.0 <= amb <= 900.0 else None
        active = bool(b.co2_status & STATUS_ACTIVE)
        src = self.source
        rr, rr_flags = value_of(b.co2_rr, 1, active)
        no_breath = frozenset((Flag.NO_BREATH,)) if active and rr == 0 else frozenset()
        for code, raw in ((Code.CO2_ET, b.co2_et), (Code.CO2_INSP_MIN, b.co2_fi)):
            pct, flags = value_of(raw, CO2_DIVISOR, active)
            if pct is not None and self._amb_mmhg is None:
                pct, flags = None, flags | {Flag.QUESTIONABLE}  # no pressure to convert with
            mmhg = None if pct is None else round(pct / 100.0 * (self._amb_mmhg or 0.0), 1)
            out.append(Numeric(src, code, mmhg, at, flags | no_breath))
        out.append(Numeric(src, Code.AWAY_RESP_RATE, rr, at, rr_flags | no_breath))

    def _basic(self, b: BasicClass, at: Stamp, out: list[Measurement]) -> None:
        src = self.source
        ecg_active = bool(b.ecg_status & STATUS_ACTIVE)
        hr, hr_flags = value_of(b.hr, 1, ecg_active)
        if b.ecg_status & (ECG_NOISE | ECG_ARTIFACT):
            hr_flags |= {Flag.ARTIFACT}
        if b.ecg_status & ECG_LEARNING:
            hr_flags |= {Flag.QUESTIONABLE}
        out.append(Numeric(src, Code.HEART_RATE, hr, at, hr_flags))
        spo2_active = bool(b.spo2_status & STATUS_ACTIVE)
        spo2, spo2_flags = value_of(b.spo2, 100, spo2_active)
        out.append(Numeric(src, Code.SPO2, spo2, at, spo2_flags))
        pr, pr_flags = value_of(b.spo2_pr, 1, spo2_active)
        out.append(Numeric(src, Code.PULSE_RATE, pr, at, pr_flags))
        amp, amp_flags = value_of(b.spo2_ir_amp, 100, spo2_active)
        out.append(DeviceValue(src, "GE_S5_SPO2_IR_AMP", amp, "%", at, amp_flags))
        self._co2_group(b, at, out)
        self._nibp_group(b, at, out)

    def _nibp_group(self, b: BasicClass, at: Stamp, out: list[Measurement]) -> None:
        st = self._nibp
        label = b.nibp_label
        if label & NIBP_CALIBRATING:
            return
        if label & NIBP_MEASURING:
            st.measuring = True
            st.seen = True
            return
        key = (b.nibp_sys, b.nibp_dia, b.nibp_mean)
        old = bool(label & NIBP_OLD)
        valid = any(v > DATA_INVALID_LIMIT for v in key)
        flags: Flags = frozenset()
        if st.measuring:
            new = True  # a measurement ended since the last record
        elif not st.seen:
            new = valid  # the reading on display when we joined
            if old:
                flags = frozenset((Flag.QUESTIONABLE,))  # its time is unknown
        else:
            new = valid and (key != st.key or (st.old and not old))
        st.seen, st.measuring, st.key, st.old = True, False, key, old
        if not new:
            return
        if not valid:
            out.append(
                NibpReading(
                    self.source, None, None, None, at, frozenset((Flag.MEASUREMENT_FAILED,))
                )
            )
            return
        parts = []
        for raw in key:
            v, f = nibp_value_of(raw)
            parts.append(v)
            flags |= f
        out.append(NibpReading(self.source, parts[0], parts[1], parts[2], at, flags))
