"""A bounded local file that holds what could not be written to the database, until it can.

When the database goes away (server down, disk full, file locked) the recorder appends each
batch here and keeps going; once the database answers again the spool is written out and
emptied. The file survives a crash: on the next start its batches are written to their session.
Only kapmonitor writes and reads it (pickle of its own item types), in the user's data folder.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_LEN = struct.Struct("<I")
#: Beyond this the spool keeps numerics, NIBP, events and alarms, and drops waveform blocks.
DEFAULT_LIMIT = 512 * 1024 * 1024


class Spool:
    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.path = path
        self.limit = limit
        self.dropped_waves = 0
        path.parent.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        """Bytes held."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, batch: Any) -> None:
        data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        with open(self.path, "ab") as f:
            f.write(_LEN.pack(len(data)) + data)
            f.flush()
            os.fsync(f.fileno())

    def full(self) -> bool:
        return len(self) >= self.limit

    def batches(self) -> Iterator[Any]:
        """The batches held, oldest first; a torn last batch (a crash mid-write) is skipped."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        pos = 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            if pos + n > len(data):
                log.warning("spool %s ends in a torn batch (%d bytes); skipped", self.path, n)
                return
            yield pickle.loads(data[pos : pos + n])
            pos += n

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
