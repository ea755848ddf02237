"""What every emulator does to answer :meth:`~devices.protocols.base.DeviceEmulator.emit`: find
the ticks of its time grid that fall in the window ``[t0, t1)``, and cut the window out of blocks
it computes whole. And the samples they send, quantised the one way every device does.

A device sends on a grid of its own (Nonin a frame every 1/75 s, Contec a packet every 1/60 s,
Masimo a line a second); the simulator asks for windows of session time that fall anywhere on it.
Each tick belongs to exactly one window, the one that holds its time, so the bytes do not depend
on where the windows fall. Where a device computes several ticks at once (Nonin's 25-frame packet,
a second of Contec packets or of S/5 pleth samples), the blocks are computed whole and cached, and
a window takes the ticks it holds out of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

#: A tick this close after a window's edge (in ticks) counts as at the edge: a time that is a
#: whole number of ticks by arithmetic may come out of the floating point a hair past it.
TOLERANCE = 1e-9


def tick_at(t: float, rate: float, origin: float = 0.0) -> int:
    """The first tick at or after time ``t`` on a grid of ``rate`` ticks a second from
    ``origin`` (tick ``k`` at ``origin + k / rate``); never below 0."""
    return max(0, math.ceil((t - origin) * rate - TOLERANCE))


def ticks(t0: float, t1: float, rate: float, origin: float = 0.0) -> range:
    """The ticks in the window ``[t0, t1)`` (see :func:`tick_at`)."""
    return range(tick_at(t0, rate, origin), tick_at(t1, rate, origin))


def quantise(x: npt.ArrayLike, full_scale: float) -> npt.NDArray[np.int64]:
    """Samples of 0..1 (a simulated pleth) as the wire's whole counts 0..``full_scale``; NaN
    (no signal) is sent as 0."""
    clean = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.rint(np.clip(clean, 0.0, 1.0) * full_scale).astype(np.int64)


#: What a block is: bytes on the wire, or samples before they are encoded.
Chunk = TypeVar("Chunk", bytes, npt.NDArray[np.float64])


class Blocks(Generic[Chunk]):
    """A stream of units (frames, packets, samples) computed ``per_block`` at a time by ``make``,
    each ``width`` elements of its block; the latest ``keep`` blocks are cached, since
    consecutive windows ask for the same block."""

    def __init__(
        self,
        make: Callable[[int], Chunk],
        per_block: int,
        join: Callable[[Sequence[Chunk]], Chunk],
        *,
        width: int = 1,
        keep: int = 4,
    ) -> None:
        self._make: Callable[[int], Chunk] = make
        self._per_block = per_block
        self._join: Callable[[Sequence[Chunk]], Chunk] = join
        self._width = width
        self._keep = keep
        self._cache: dict[int, Chunk] = {}

    def block(self, index: int) -> Chunk:
        """Block ``index`` (units ``index * per_block`` onwards)."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        block = self._make(index)
        if len(self._cache) >= self._keep:
            self._cache.clear()
        self._cache[index] = block
        return block

    def units(self, first: int, end: int) -> Chunk:
        """Units ``first .. end - 1`` (``first < end``), cut out of the blocks that hold them."""
        per = self._per_block
        j0, j1 = first // per, (end - 1) // per
        data = self._join([self.block(j) for j in range(j0, j1 + 1)])
        base = j0 * per
        return data[(first - base) * self._width : (end - base) * self._width]
