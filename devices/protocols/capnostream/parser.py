"""The Capnostream parser: messages to breathing and oximetry items."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from devices.protocols.base import Parser, ParserStats, SerialSettings
from devices.protocols.capnostream.wire import (
    BYTE_RATE,
    CO2_NO_BREATH,
    EXT_CHECK_FLOW,
    EXT_PUMP_OFF,
    FAST_INITIALIZATION,
    FAST_INVALID,
    FAST_LINE_OFF,
    FAST_MALFUNCTION,
    FAST_OCCLUSION,
    FAST_PURGING,
    FAST_SFM,
    HEADER,
    INVALID,
    LENGTHS,
    RSP_CO2_WAVE,
    RSP_DEVICE_ID,
    RSP_NUMERICS,
    SPO2_PULSE_NOT_FOUND,
    SPO2_SENSOR_DISCONNECTED,
    SPO2_SENSOR_OFF,
    UNITS_MMHG,
    WAVE_BYTES,
    WAVE_RATE,
    checksum,
    decode_numerics,
    unescape_frame,
    wave_co2,
)
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, Measurement, Numeric, Stamp, WaveformBlock

#: Messages in a row (nothing discarded between them) before the stream is trusted: an XOR
#: checksum passes one random message in 256, so line noise would otherwise give a value now
#: and then. The device sends 21 messages a second, so this costs 0.1 s at the start.
LOCK_FRAMES = 3
#: CO2 samples per WaveformBlock (0.5 s, as OpenICE's buffer of 10).
BLOCK_SAMPLES = 10
#: Runs of plain CO2 wave messages (header, length 5, code 0, four payload bytes and a checksum
#: with no escape among them): most of the stream, decoded many at a time (C speed to find them,
#: numpy to check and read them), so a 2-hour file decodes in a fraction of a second.
_WAVE_RUN = re.compile(rb"(?:\x85\x05\x00[^\x80\x85]{5})+")
_BULK_MIN = 4 * WAVE_BYTES  #: shorter runs go one message at a time

_SENSOR_OFF = frozenset({Flag.SENSOR_OFF})
_NONE: frozenset[Flag] = frozenset()


@dataclass
class CapnostreamStats(ParserStats):
    frames_wave: int = 0
    frames_numerics: int = 0
    frames_other: int = 0  #: replies and messages of other codes, checksum good
    frames_unconfirmed: int = 0  #: good messages dropped because too few came in a row
    waves_skipped: int = 0  #: CO2 wave messages lost, counted by their message numbers
    bytes_in_frames: int = 0


def _wave_flags(status: int) -> frozenset[Flag]:
    """What a CO2 wave message's fast status says about the CO2 signal."""
    flags: set[Flag] = set()
    if status & FAST_LINE_OFF:
        flags.add(Flag.SENSOR_OFF)
    if status & FAST_OCCLUSION:
        flags.add(Flag.LINE_BLOCKED)
    if status & (FAST_INITIALIZATION | FAST_SFM | FAST_PURGING):
        flags.add(Flag.SEARCHING)  # the capnograph is busy and measures nothing yet
    if status & FAST_MALFUNCTION:
        flags.add(Flag.MEASUREMENT_FAILED)
    return frozenset(flags)


#: The flags of every fast status byte, computed once.
_WAVE_FLAGS = tuple(_wave_flags(s) for s in range(256))
_NO_SAMPLE = FAST_INVALID | FAST_MALFUNCTION  #: the sample is no CO2 value at all


class CapnostreamParser(Parser):
    """Decodes a Capnostream 20 host-protocol stream (see the package notes)."""

    protocol: ClassVar[str] = "capnostream"
    SERIAL: ClassVar[SerialSettings] = SerialSettings(115200)

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.stats: CapnostreamStats = CapnostreamStats()
        #: The device's id and software version, from its answer to "enable communication".
        self.device_id: str | None = None
        self._buf = b""
        self._run = 0  #: good messages in a row
        #: The run's messages (raw, unescaped, stamp) until the run is trusted.
        self._held: list[tuple[bytes, bytes, Stamp]] = []
        self._in_step = False  #: the previous bytes were a good message
        self._samples: list[float] = []
        self._block_flags: set[Flag] = set()
        self._block_end: Stamp | None = None
        self._last_number: int | None = None
        self._fast = 0  #: the latest fast status: the line's state, for the CO2 numerics
        self._units = UNITS_MMHG
        #: With guessed arrivals: the device clock's reference, (its seconds, their host stamp),
        #: and the latest numerics stamp (see :meth:`_on_device_time`).
        self._ref: tuple[int, Stamp] | None = None
        self._last_at: Stamp | None = None
        #: With guessed arrivals: ``mono`` just after the previous CO2 wave block's last sample.
        self._wave_next: float | None = None

    @property
    def pending_bytes(self) -> int:
        """Bytes held for a message not yet complete: ``bytes_in == bytes_discarded +
        bytes_in_frames + pending_bytes``."""
        return len(self._buf) + sum(len(m[0]) for m in self._held)

    def _feed(self, data: bytes, stamp: Stamp) -> list[Measurement]:
        buf = self._buf + data if self._buf else data
        n = len(buf)
        out: list[Measurement] = []
        pos = 0
        while pos < n:
            h = buf.find(HEADER, pos)
            if h < 0:
                self._discard(n - pos, out)
                pos = n
                break
            if h > pos:
                self._discard(h - pos, out)
                pos = h
            if self._run >= LOCK_FRAMES:
                bulk = _WAVE_RUN.match(buf, h)
                if bulk is not None and bulk.end() - h >= _BULK_MIN:
                    pos = self._bulk_waves(buf, h, bulk.end(), stamp, out)
                    if pos > h:
                        continue
            status, body, end = unescape_frame(buf, h)
            if status == 0:
                break
            if (
                status < 0
                or body[-1] != checksum(body[:-1])
                or LENGTHS.get(body[1], body[0]) != body[0]
            ):
                self._discard(1, out)  # this header starts nothing: hunt for the next one
                pos = h + 1
                continue
            self._good(buf[h:end], body, n - end, stamp, out)
            pos = end
        self._buf = buf[pos:]
        return out

    def _bulk_waves(
        self, buf: bytes, start: int, end: int, stamp: Stamp, out: list[Measurement]
    ) -> int:
        """Decode the plain CO2 wave messages ``buf[start:end]`` (8 bytes each, no escapes) with
        numpy: the same items and counters as one message at a time, for the stretch whose
        checksums are good and whose message numbers follow on; returns where it stopped."""
        rows = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
        rows = rows.reshape(-1, WAVE_BYTES)
        good = np.bitwise_xor.reduce(rows[:, 1:7], axis=1) == rows[:, 7]
        numbers = rows[:, 3].astype(np.int64)
        if self._last_number is not None:
            follows = numbers == (np.concatenate(([self._last_number], numbers[:-1])) + 1) & 0xFF
        else:
            follows = np.concatenate(([True], numbers[1:] == (numbers[:-1] + 1) & 0xFF))
        bad = np.flatnonzero(~(good & follows))
        k = int(bad[0]) if len(bad) else len(rows)
        if k == 0:
            return start  # the message-at-a-time path says what is wrong with it
        rows = rows[:k]
        stats = self.stats
        stats.frames_ok += k
        stats.frames_wave += k
        stats.bytes_in_frames += k * WAVE_BYTES
        self._run += k
        self._in_step = True
        status = rows[:, 6]
        if self._units != UNITS_MMHG:
            values = np.full(k, np.nan)
        else:
            values = rows[:, 4] + rows[:, 5] / 256.0
            values[(status & _NO_SAMPLE) != 0] = np.nan
        n = len(buf)
        i = 0
        while i < k:
            take = min(BLOCK_SAMPLES - len(self._samples), k - i)
            seg = status[i : i + take]
            self._block_flags |= _WAVE_FLAGS[int(np.bitwise_or.reduce(seg))]
            self._samples.extend(values[i : i + take].tolist())
            i += take
            msg_end = start + i * WAVE_BYTES
            after = n - msg_end
            self._block_end = stamp.shifted(-self.back(after, BYTE_RATE)) if after else stamp
            if len(self._samples) >= BLOCK_SAMPLES:
                self._flush_block(out)
        self._last_number = int(numbers[k - 1])
        self._fast = int(status[-1])
        return start + k * WAVE_BYTES

    def _flush_held(self) -> list[Measurement]:
        out: list[Measurement] = []
        self._flush_block(out)
        return out

    # --- framing ---------------------------------------------------------------------------------

    def _discard(self, count: int, out: list[Measurement]) -> None:
        stats = self.stats
        stats.bytes_discarded += count
        if self._in_step:
            stats.framing_errors += 1
            stats.resyncs += 1
        self._in_step = False
        if self._held:  # a run too short to trust: its messages go with the noise
            stats.frames_unconfirmed += len(self._held)
            stats.bytes_discarded += sum(len(m[0]) for m in self._held)
            self._held = []
        self._run = 0
        self._flush_block(out)  # the next samples may not follow these

    def _good(
        self, raw: bytes, body: bytes, after: int, stamp: Stamp, out: list[Measurement]
    ) -> None:
        self._in_step = True
        self._run += 1
        at = stamp.shifted(-self.back(after, BYTE_RATE)) if after else stamp
        if self._run < LOCK_FRAMES:
            self._held.append((raw, body, at))
            return
        for held in self._held:
            self._message(*held, out)
        self._held = []
        self._message(raw, body, at, out)

    # --- messages --------------------------------------------------------------------------------

    def _message(self, raw: bytes, body: bytes, at: Stamp, out: list[Measurement]) -> None:
        stats = self.stats
        stats.frames_ok += 1
        stats.bytes_in_frames += len(raw)
        code, payload = body[1], body[2:-1]
        if code == RSP_CO2_WAVE:
            stats.frames_wave += 1
            self._wave(payload, at, out)
        elif code == RSP_NUMERICS:
            stats.frames_numerics += 1
            self._numerics(payload, at, out)
        else:
            stats.frames_other += 1
            if code == RSP_DEVICE_ID:
                self.device_id = payload.decode("ascii", "replace").strip()

    def _wave(self, payload: bytes, at: Stamp, out: list[Measurement]) -> None:
        number, status = payload[0], payload[3]
        last = self._last_number
        if last is not None and number != (last + 1) & 0xFF:
            self.stats.waves_skipped += (number - last - 1) & 0xFF
            self._flush_block(out)  # lost samples: a block's samples must be consecutive
        self._last_number = number
        self._fast = status
        value = np.nan if status & _NO_SAMPLE or self._units != UNITS_MMHG else wave_co2(payload)
        self._samples.append(value)
        self._block_flags |= _WAVE_FLAGS[status]
        self._block_end = at
        if len(self._samples) >= BLOCK_SAMPLES:
            self._flush_block(out)

    def _flush_block(self, out: list[Measurement]) -> None:
        if not self._samples:
            return
        end = self._block_end
        assert end is not None
        k = len(self._samples)
        first = end.shifted(-(k - 1) / WAVE_RATE) if k > 1 else end
        if self.guessed_arrivals:  # the byte rate, but never over the previous block's samples
            after = self._wave_next
            if after is not None and first.mono < after:
                first = Stamp(after, first.wall + (after - first.mono))
            self._wave_next = first.mono + k / WAVE_RATE
        out.append(
            WaveformBlock(
                self.source,
                Code.CO2,
                first,
                WAVE_RATE,
                np.asarray(self._samples, dtype=np.float64),
                frozenset(self._block_flags),
            )
        )
        self._samples = []
        self._block_flags = set()

    def _on_device_time(self, seconds: int, at: Stamp) -> Stamp:
        """A numerics message's stamp on the device's own clock (whole seconds), for guessed
        arrivals (a plain file): the first message anchors the clock where its bytes put it,
        each later one sits its clock's seconds after it, so a gap in what the device sent stays
        a gap. A time equal to or before the latest one (the clock was set back) holds at the
        latest stamp rather than moving on by the message's bytes at the byte rate (an average
        over waves that may not be streaming), and becomes the new reference, so the messages
        after it follow the device's clock again. Time never runs backwards.

        The CO2 wave stays on the byte rate (a block never starts before the previous one's
        samples end): its message number is one byte (it wraps every 12.8 s) and says nothing
        of the device's clock, so it cannot be placed on it."""
        ref, last = self._ref, self._last_at
        if ref is None or last is None:
            self._ref, self._last_at = (seconds, at), at
            return at
        d = seconds - ref[0]
        stamp = Stamp(ref[1].mono + d, ref[1].wall + d)
        if stamp.mono < last.mono:
            self._ref, stamp = (seconds, last), last
        self._last_at = stamp
        return stamp

    def _numerics(self, payload: bytes, at: Stamp, out: list[Measurement]) -> None:
        f = decode_numerics(payload)
        if self.guessed_arrivals:
            at = self._on_device_time(f.timestamp, at)
        self._units = f.units
        if f.units != UNITS_MMHG:
            self.problem = (
                "the Capnostream sends CO2 in kPa or % : set its CO2 unit to mmHg "
                "(CO2 values are left out until then)"
            )
        elif self.problem is not None and self.problem.startswith("the Capnostream sends"):
            self.problem = None
        co2_flags = set(_WAVE_FLAGS[self._fast])
        if f.co2_alarms & CO2_NO_BREATH:
            co2_flags.add(Flag.NO_BREATH)
        if f.extended_co2_status & (EXT_CHECK_FLOW | EXT_PUMP_OFF):
            co2_flags.add(Flag.LINE_BLOCKED)  # no gas reaches the sensor
        co2 = frozenset(co2_flags)
        ox: frozenset[Flag] = _NONE
        if f.spo2_alarms & (SPO2_SENSOR_OFF | SPO2_SENSOR_DISCONNECTED):
            ox = _SENSOR_OFF
        elif f.spo2_alarms & SPO2_PULSE_NOT_FOUND:
            ox = frozenset({Flag.SEARCHING})
        mmhg = f.units == UNITS_MMHG
        src = self.source
        out.append(Numeric(src, Code.CO2_ET, _value(f.etco2) if mmhg else None, at, co2))
        out.append(Numeric(src, Code.CO2_INSP_MIN, _value(f.fico2) if mmhg else None, at, co2))
        out.append(Numeric(src, Code.RESP_RATE, _value(f.rr), at, co2))
        out.append(Numeric(src, Code.SPO2, _value(f.spo2), at, ox))
        out.append(Numeric(src, Code.PULSE_RATE, _value(f.pulse), at, ox))


def _value(raw: int) -> float | None:
    return None if raw == INVALID else float(raw)
