"""JSON lines written fast: the output of ``decode``, byte for byte what :mod:`.core.jsonl` gives.

A 2-hour oximeter stream is some 65,000 lines; building a dict and calling ``json.dumps`` for
each costs more than decoding the bytes. Numerics and waveform blocks (nearly every line) are
formatted directly, with each code's, unit's and flag set's JSON text made once; anything less
common goes through :func:`kapmonitor.core.jsonl.records` and ``dumps``. Floats print as
``json`` prints them (``float.__repr__``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import TextIO

from kapmonitor.core import jsonl
from kapmonitor.core.model import Flags, Item, Numeric, WaveformBlock

_BUFFER = 1 << 16  #: characters gathered before a write
#: In a list of floats' text: more than 6 decimals, an exponent, nan or inf.
_NOT_AS_IS = re.compile(r"\.\d{7}|[a-z]")


class JsonLines:
    """Writes items to ``out`` as JSON lines; :meth:`close` writes what is still gathered."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._parts: list[str] = []
        self._size = 0
        self.written = 0  #: items written
        self._heads: dict[object, str] = {}  #: per code: its line up to the t
        self._tails: dict[object, str] = {}  #: per code, unit and flags: the end of its line

    def write(self, items: Sequence[Item]) -> None:
        if not items:
            return
        parts = self._parts
        for item in items:
            if type(item) is Numeric:
                line = self._numeric(item)
            elif type(item) is WaveformBlock:
                line = self._wave(item)
            else:
                line = "".join(jsonl.dumps(r) + "\n" for r in jsonl.records(item, 0.0))
            parts.append(line)
            self._size += len(line)
        self.written += len(items)
        if self._size > _BUFFER:
            self._flush()

    def _numeric(self, item: Numeric) -> str:
        value = item.value
        if value is None:
            text = "null"
        elif type(value) is int:
            text = str(value)
        elif type(value) is float and math.isfinite(value):
            text = repr(value)
        else:  # anything unusual: exactly as the core writes it
            return "".join(jsonl.dumps(r) + "\n" for r in jsonl.records(item, 0.0))
        key = (item.code, item.flags)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tails[key] = (
                f',"unit":{json.dumps(item.unit)},"flags":{_flags(item.flags)}}}\n'
            )
        head = self._heads.get(item.code)
        if head is None:
            head = self._heads[item.code] = f',"code":{json.dumps(item.code.value)},"value":'
        return f'{{"t":{round(item.stamp.mono, 4)!r}{head}{text}{tail}'

    def _wave(self, item: WaveformBlock) -> str:
        # A list's text is its floats' reprs (as json writes them) joined by ", ": one C call.
        samples = str(item.samples.tolist()).replace(" ", "")
        # A sample json would write otherwise (NaN is null), or one with more than 6 decimals
        # (the core rounds to 6), goes through the core's own rounding.
        if _NOT_AS_IS.search(samples):
            return "".join(jsonl.dumps(r) + "\n" for r in jsonl.records(item, 0.0))
        key = (item.code, item.fs)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                f',"code":{json.dumps(item.code.value)},"fs":{json.dumps(item.fs)},"samples":'
            )
        return (
            f'{{"t":{round(item.stamp.mono, 4)!r}{head}{samples},"flags":{_flags(item.flags)}}}\n'
        )

    def _flush(self) -> None:
        self._out.write("".join(self._parts))
        self._parts.clear()
        self._size = 0

    def close(self) -> None:
        self._flush()


_FLAG_TEXT: dict[Flags, str] = {}


def _flags(flags: Flags) -> str:
    text = _FLAG_TEXT.get(flags)
    if text is None:
        text = _FLAG_TEXT[flags] = json.dumps(sorted(f.value for f in flags), separators=(",", ":"))
    return text
