"""A recorder's own local file of the batches it could not write to the database yet.

When the database goes away (server down, disk full, file locked) the recorder appends each
batch here and keeps going; once the database answers again the spool is written out and
emptied. The file survives a crash: on the next start its batches are written to their session.

One spool per recorder, never shared: ``<database digest>.<writer id>.kspool``, locked with
``flock`` for as long as its recorder lives. A starting process recovers only the spools whose
lock is free, i.e. whose recorder died; a live recorder's spool is never read or emptied by
another process. The file is created under a temporary name and renamed once locked, so nobody
ever sees it unlocked while its owner lives.

Records are ``MAGIC, length, CRC-32, payload`` (the payload is :mod:`~kapmonitor.record.batch`'s
JSON): a batch torn by a crash mid-write, or damaged on disk, fails its checksum and is skipped —
exactly that batch; reading resumes at the next record's magic. Nothing in it can run code.

A spool from before this format (``<digest>.spool``, pickle) is not read: unpickling a file from
a user-writable folder can run any code. It is left in place, untouched, and named once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

from kapmonitor.record.batch import Batch, decode, encode
from kapmonitor.record.db import private_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

log = logging.getLogger(__name__)

MAGIC = b"KSB1"
_HEAD = struct.Struct("<4sII")  #: magic, payload length, zlib.crc32 of the payload
SUFFIX = ".kspool"
_FLAGS = os.O_RDWR | os.O_APPEND | getattr(os, "O_BINARY", 0)
#: Beyond this the spool keeps numerics, NIBP, events and alarms, and drops waveform blocks.
DEFAULT_LIMIT = 512 * 1024 * 1024


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows (untested here): a lock on the first byte
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


class Spool:
    """A spool file this process holds locked (its own, or a dead recorder's it recovers)."""

    def __init__(self, path: Path, fd: int, limit: int = DEFAULT_LIMIT) -> None:
        self.path = path
        self.limit = limit
        self.dropped_waves = 0
        self.torn = 0  #: damaged batches skipped when it was read
        self._fd: int | None = fd

    @classmethod
    def create(cls, directory: Path, prefix: str, writer: str, limit: int = DEFAULT_LIMIT) -> Spool:
        """A new, locked, owner-only spool named for ``writer``."""
        private_folder(directory)  # the data folder too, when this creates it
        path = directory / f"{prefix}.{writer}{SUFFIX}"
        if fcntl is None:  # pragma: no cover - Windows cannot rename an open file
            fd = os.open(path, os.O_CREAT | os.O_EXCL | _FLAGS, 0o600)
            _try_lock(fd)
            return cls(path, fd, limit)
        temporary = directory / f".{prefix}.{writer}.new"
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | _FLAGS, 0o600)
        _try_lock(fd)
        os.replace(temporary, path)
        return cls(path, fd, limit)

    @property
    def _held(self) -> int:
        """The open file's descriptor; using a spool after :meth:`close` is a programming error."""
        if self._fd is None:
            raise ValueError(f"the spool {self.path.name} is closed")
        return self._fd

    def __len__(self) -> int:
        """Bytes held (none once it is removed)."""
        return 0 if self._fd is None else os.fstat(self._fd).st_size

    def full(self) -> bool:
        return len(self) >= self.limit

    def append(self, batch: Batch) -> None:
        """Add ``batch`` durably; on failure (a full disk) the file is left as it was."""
        payload = encode(batch)
        record = _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
        size = len(self)
        try:
            written = os.write(self._held, record)
            if written != len(record):
                raise OSError(28, "short write to the spool")
            os.fsync(self._held)
        except OSError:
            with contextlib.suppress(OSError):  # else the torn record is skipped when read
                os.ftruncate(self._held, size)  # no torn record left behind
            raise

    def batches(self) -> Iterator[Batch]:
        """The batches held, oldest first; a damaged one is skipped (and counted in ``torn``)."""
        os.lseek(self._held, 0, os.SEEK_SET)  # writes still go to the end (O_APPEND)
        data = b"".join(iter(lambda: os.read(self._held, 1 << 20), b""))
        self.torn = 0
        good_end = pos = 0  # the end of the last good record; where to look for the next
        while (start := data.find(MAGIC, pos)) >= 0:
            batch, end = _record_at(data, start)
            if batch is None:
                pos = start + 1  # not a good record: look for the next one
                continue
            if start > good_end:
                self.torn += 1  # bytes between good records: a damaged or torn one
            yield batch
            good_end = pos = end
        if len(data) > good_end:
            self.torn += 1

    def clear(self) -> None:
        """Empty it (everything in it is in the database)."""
        os.ftruncate(self._held, 0)

    def close(self, *, remove: bool) -> None:
        """Let go of it; ``remove`` deletes it (it must be empty, or its batches written)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _record_at(data: bytes, start: int) -> tuple[Batch | None, int]:
    if start + _HEAD.size > len(data):
        return None, start
    _, n, crc = _HEAD.unpack_from(data, start)
    body = start + _HEAD.size
    payload = data[body : body + n]
    if len(payload) != n or zlib.crc32(payload) != crc:
        return None, start
    try:
        return decode(payload), body + n
    except ValueError:
        return None, start


def orphans(directory: Path, prefix: str) -> Iterator[Spool]:
    """The spools for one database whose recorder has died, each locked by this process.

    A spool whose lock is held belongs to a live recorder (here or in another process) and is
    skipped. The caller writes each one out and closes it with ``remove=True``.
    """
    legacy = directory / f"{prefix}.spool"
    if legacy.exists():
        log.warning(
            "the spool %s is from an older kapmonitor and was not read: it is pickle, which can "
            "run code; it is kept as it was",
            legacy,
        )
    for path in sorted(directory.glob(f"{prefix}.*{SUFFIX}")):
        try:
            fd = os.open(path, _FLAGS)
        except FileNotFoundError:
            continue  # written out by another process just now
        if not _try_lock(fd) or os.fstat(fd).st_nlink == 0:
            os.close(fd)  # a live recorder's, or removed after it was written out
            continue
        yield Spool(path, fd)


def new_writer() -> str:
    return uuid.uuid4().hex
