"""Columns of numbers packed losslessly into one small blob: how the record keeps a minute of
numerics or of a waveform in one row instead of hundreds.

Each column is taken as the unsigned integers of its bytes (a float64 as its 64 bits), delta
coded ``order`` times (modulo 2**bits, so any value, NaN and infinity included, comes back bit
for bit), byte-shuffled (all first bytes, then all second bytes, …) and the whole deflated with
zlib. A smooth signal's neighbouring samples share their high bytes, and times that step evenly
have nearly constant deltas: after the shuffle both are long runs that zlib stores in a few
bytes. zlib (stdlib) rather than a faster or stronger codec: every Python has it, every SQLite
and PostgreSQL client can read the blob back with it, and it decodes a minute of pleth in well
under a millisecond.

The first byte is the format (:data:`FORMAT`), the second a tag the caller chooses (how a
waveform's samples are held); a blob of an unknown format is refused, never misread.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

FORMAT = 1
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

#: A column to unpack: its dtype, its delta order and its length.
Layout = tuple[np.dtype | str, int, int]


def pack(columns: Sequence[tuple[np.ndarray, int]], tag: int = 0) -> bytes:
    """``columns`` (array, delta order) as one zlib blob headed by the format and ``tag``."""
    parts = [bytes((FORMAT, tag))]
    for values, order in columns:
        values = np.ascontiguousarray(values)
        width = values.dtype.itemsize
        u = values.reshape(-1).view(_UINT[width])
        for _ in range(order):
            u = np.diff(u, prepend=u.dtype.type(0))  # unsigned: wraps, so always reversible
        parts.append(u.view(np.uint8).reshape(-1, width).T.tobytes())
    return zlib.compress(b"".join(parts), 6)


def unpack(data: bytes, layout: Sequence[Layout]) -> tuple[int, list[np.ndarray]]:
    """The tag and the columns :func:`pack` packed, read by ``layout``.

    Raises :class:`ValueError` for a blob that is not one (damaged, another format, too short).
    """
    try:
        raw = zlib.decompress(data)
    except zlib.error as exc:
        raise ValueError(f"a damaged record block: {exc}") from None
    if len(raw) < 2 or raw[0] != FORMAT:
        raise ValueError(f"a record block of an unknown format ({raw[:1].hex() or 'empty'})")
    pos, out = 2, []
    for dtype, order, n in layout:
        dtype = np.dtype(dtype)
        width = dtype.itemsize
        size = width * n
        if pos + size > len(raw):
            raise ValueError("a record block shorter than its columns")
        shuffled = np.frombuffer(raw, np.uint8, size, pos).reshape(width, n)
        u = shuffled.T.copy().view(_UINT[width]).reshape(n)
        for _ in range(order):
            u = np.cumsum(u, dtype=u.dtype)
        out.append(u.view(dtype))
        pos += size
    if pos != len(raw):
        raise ValueError("a record block longer than its columns")
    return raw[1], out
