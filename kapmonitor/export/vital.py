"""VitalDB ``.vital`` export: the session as VitalRecorder writes it, waves included.

The format (VitalDB's ``Vital_File_Format.md``; the reader is ``vitaldb.VitalFile``) is a
gzip-compressed little-endian stream: the ``VITA`` header (format version 3, time-zone bias,
start and end time), then packets of ``type:u8, length:u32, body``: DEVINFO (9) per device,
TRKINFO (0) per track, and REC (1) per record. It is written here with struct and numpy only.

Tracks:

- one numeric track (NUM, float32) per device and code, named ``<device>/<label>`` (e.g.
  ``sim:kap-export/SpO2``, ``nonin2@ttyUSB0/PR``, ``…/NIBP sys``), vendor values under their
  key. A missing value writes no record (as VitalRecorder does), so it reads back as NaN,
  never 0; flags are not carried.
- one wave track (WAV, float32, gain 1) per device and waveform, e.g. ``…/Pleth``: float32 keeps
  the device's counts or normalised wave to 7 significant digits and keeps an invalid sample as
  NaN, which 16-bit samples with a gain and offset cannot. Consecutive blocks are joined into
  records of up to :data:`WAVE_REC_S` seconds.
- ``EVENT`` (STR): the session events ("dose: …", "marker: …"), as VitalRecorder's event track;
  ``ALARM`` (STR): the alarm log.

Device names are cleaned for VitalDB, whose names are ``device/track`` and whose readers split
lists at commas: ``PROTOCOL@/dev/ttyUSB0`` becomes ``PROTOCOL@ttyUSB0``, and any remaining
``/``, ``\\`` or ``,`` becomes ``_``. The port is kept in the device's DEVINFO.

The format has no place for a patient identifier or a person's name; it does hold the session's
times and the events' texts. De-identified, those come from the shared de-identification step
(:mod:`~kapmonitor.export.deidentify`: dates shifted, no free text), which
``export_session`` applies before this writer runs. Times are UTC (bias 0).
"""

from __future__ import annotations

import gzip
import math
import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath, PureWindowsPath
from typing import BinaryIO

import numpy as np

from kapmonitor.core.codes import Code
from kapmonitor.export import measurement_rows, number_text, sources
from kapmonitor.record.session import SessionRecord

FORMAT_VERSION = 3
TYPE_WAV, TYPE_NUM, TYPE_STR = 1, 2, 5
FMT_FLOAT = 1  #: float32
PKT_TRKINFO, PKT_REC, PKT_DEVINFO = 0, 1, 9
#: Longest wave record, in seconds (VitalDB readers refuse packets over 1 MB).
WAVE_REC_S = 10.0

#: Display range and colour (0xAARRGGBB, VitalRecorder's) per code.
DISPLAY: dict[Code, tuple[float, float, int]] = {
    Code.SPO2: (80.0, 100.0, 0xFF87CEFA),
    Code.PULSE_RATE: (0.0, 200.0, 0xFF00FF00),
    Code.HEART_RATE: (0.0, 200.0, 0xFF00FF00),
    Code.NIBP_SYS: (0.0, 250.0, 0xFFFFFFFF),
    Code.NIBP_DIA: (0.0, 250.0, 0xFFFFFFFF),
    Code.NIBP_MEAN: (0.0, 250.0, 0xFFFFFFFF),
    Code.PLETH: (0.0, 1.0, 0xFF87CEFA),
    Code.PERFUSION: (0.0, 20.0, 0xFF87CEFA),
    Code.RESP_RATE: (0.0, 40.0, 0xFFFFFF00),
    Code.AWAY_RESP_RATE: (0.0, 40.0, 0xFFFFFF00),
    Code.CO2_ET: (0.0, 80.0, 0xFFFFFF00),
    Code.CO2_INSP_MIN: (0.0, 80.0, 0xFFFFFF00),
    Code.CO2: (0.0, 60.0, 0xFFFFFF00),
}
WHITE = 0xFFFFFFFF


def _str(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<L", len(data)) + data


@dataclass
class _Track:
    name: str
    kind: int
    unit: str = ""
    did: int = 0
    srate: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    colour: int = WHITE
    recs: list[bytes] = field(default_factory=list)  #: REC packet bodies
    start: float = 0.0
    end: float = 0.0

    def add(self, wall: float, payload: bytes, end: float | None = None) -> None:
        if not self.recs:
            self.start = wall
        self.end = max(self.end, wall if end is None else end)
        self.recs.append(payload)

    def info(self, tid: int) -> bytes:
        reclen = sum(5 + len(r) for r in self.recs)
        return (
            struct.pack("<HBB", tid, self.kind, FMT_FLOAT)
            + _str(self.name)
            + _str(self.unit)
            + struct.pack(
                "<ffLfddBL", self.lo, self.hi, self.colour, self.srate, 1.0, 0.0, 0, self.did
            )
            + struct.pack("<Ldd", reclen, self.start, self.end)
        )


def device_names(record: SessionRecord) -> dict[str, str]:
    """A VitalDB-safe, unique device name per source."""
    known = {d.source: d for d in record.devices}
    names: dict[str, str] = {}
    for source in sources(record):
        d = known.get(source)
        name = source
        if d is not None and d.port and source.lower() == f"{d.protocol}@{d.port}".lower():
            port = PureWindowsPath(d.port).name if "\\" in d.port else PurePath(d.port).name
            name = f"{source.split('@', 1)[0]}@{port or d.port}"
        for char in "/\\,":
            name = name.replace(char, "_")
        name = name.strip() or "device"
        base, k = name, 2
        while name in names.values():
            name, k = f"{base}-{k}", k + 1
        names[source] = name
    return names


def write(record: SessionRecord, out: BinaryIO, *, deidentify: bool = False) -> None:
    """Write the session as a gzip-compressed ``.vital`` file to ``out``."""
    del deidentify  # the record is de-identified before it gets here (see the docstring)
    names = device_names(record)
    known = {d.source: d for d in record.devices}
    dids = {source: n for n, source in enumerate(names, 1)}
    tracks: dict[tuple[str, str], _Track] = {}

    def track(
        source: str,
        key: str,
        label: str,
        kind: int,
        unit: str,
        code: Code | None,
        srate: float = 0.0,
    ) -> _Track:
        trk = tracks.get((source, key))
        if trk is None:
            lo, hi, colour = DISPLAY.get(code, (0.0, 0.0, WHITE)) if code else (0.0, 0.0, WHITE)
            trk = _Track(label, kind, unit, dids.get(source, 0), srate, lo, hi, colour)
            tracks[(source, key)] = trk
        return trk

    numeric = struct.Struct("<HdHf")
    for row in measurement_rows(record):
        if row.value is None:
            continue
        code = Code(row.code) if row.info is not None else None
        label = row.info.label if row.info is not None else row.code
        trk = track(row.source, row.code, label, TYPE_NUM, row.unit, code)
        trk.add(row.stamp.wall, numeric.pack(10, row.stamp.wall, 0, float(row.value)))

    _waves(record, track)

    events = _Track("EVENT", TYPE_STR)
    for e in record.events:
        text = f"{e.kind}: {e.text}" if e.text else e.kind
        if e.source:
            text += f" ({e.source})"
        events.add(e.stamp.wall, _str_rec(e.stamp.wall, text))
    alarms = _Track("ALARM", TYPE_STR)
    for a in record.alarms:
        parts = [a.event.value, a.condition or "", a.priority.label if a.priority else ""]
        text = " ".join(p for p in parts if p)
        if a.text:
            text += f": {a.text}"
        if a.value is not None:
            text += f" (value {number_text(a.value)}"
            text += f", limit {number_text(a.limit)})" if a.limit is not None else ")"
        alarms.add(a.stamp.wall, _str_rec(a.stamp.wall, text))
    ordered = list(tracks.values()) + [t for t in (events, alarms) if t.recs]

    info = record.info
    ends = [info.ended or info.started, *(t.end for t in ordered)]
    raw = bytearray(b"VITA")
    raw += struct.pack("<LH", FORMAT_VERSION, 26)
    raw += struct.pack("<hLLdd", 0, 0, 0, info.started, max(ends))
    for source, did in dids.items():
        d = known.get(source)
        body = struct.pack("<L", did) + _str(d.protocol if d else "") + _str(names[source])
        body += _str(d.port if d else "")
        raw += _packet(PKT_DEVINFO, body)
    for tid, trk in enumerate(ordered, 1):
        raw += _packet(PKT_TRKINFO, trk.info(tid))
    for tid, trk in enumerate(ordered, 1):
        tid_bytes = struct.pack("<H", tid)
        for rec in trk.recs:
            # Each record body was packed with tid 0 at bytes 10..12: set this track's id.
            raw += _packet(PKT_REC, rec[:10] + tid_bytes + rec[12:])
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(raw)


def _packet(kind: int, body: bytes) -> bytes:
    return struct.pack("<BL", kind, len(body)) + body


def _str_rec(wall: float, text: str) -> bytes:
    return struct.pack("<HdHL", 10, wall, 0, 0) + _str(text)


def _waves(record: SessionRecord, track: Callable[..., _Track]) -> None:
    """Wave records: runs of consecutive blocks, cut every :data:`WAVE_REC_S` seconds."""
    runs: dict[tuple[str, Code, float], list[tuple[float, list[np.ndarray]]]] = defaultdict(list)
    ends: dict[tuple[str, Code, float], int] = {}  #: samples in each key's last run
    for block in sorted(record.waves, key=lambda b: b.stamp.wall):
        key = (block.source, block.code, block.fs)
        chain = runs[key]
        if chain:
            start, parts = chain[-1]
            expected = start + ends[key] / block.fs
            if abs(block.stamp.wall - expected) < 0.5 / block.fs:
                parts.append(block.samples)
                ends[key] += len(block.samples)
                continue
        chain.append((block.stamp.wall, [block.samples]))
        ends[key] = len(block.samples)
    for (source, code, fs), chain in runs.items():
        trk = track(
            source, f"wave:{code.value}:{fs}", code.info.label, TYPE_WAV, code.unit, code, fs
        )
        step = max(1, math.floor(WAVE_REC_S * fs))
        for start, parts in chain:
            samples = np.concatenate(parts).astype("<f4")
            for i in range(0, len(samples), step):
                chunk = samples[i : i + step]
                wall = start + i / fs
                body = struct.pack("<HdHL", 10, wall, 0, len(chunk)) + chunk.tobytes()
                trk.add(wall, body, wall + len(chunk) / fs)


__all__ = ["device_names", "write"]
