"""decode's fast JSON lines are, byte for byte, what :mod:`kapmonitor.core.jsonl` writes.

``decode`` formats numerics and waveform blocks itself (``json.dumps`` per line cost more than
decoding); any value the fast path cannot print exactly as the core does (NaN, more than six
decimals, an exponent, a value that is not a plain int or float) must fall back to the core.
"""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kapmonitor.cli.jsonl_writer import JsonLines
from kapmonitor.core import jsonl
from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flag, Item, NibpReading, Numeric, Stamp, WaveformBlock
from tests.protocol_helpers import hypo

HYPO = hypo()
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
samples = st.floats(allow_infinity=False, width=64) | st.integers(-(2**16), 2**16).map(float)
stamps = st.floats(0, 1e6, allow_nan=False).map(lambda t: Stamp(t, t))
flags = st.frozensets(st.sampled_from(list(Flag)))


def core(items: list[Item]) -> str:
    return "".join(jsonl.dumps(r) + "\n" for item in items for r in jsonl.records(item, 0.0))


def fast(items: list[Item]) -> str:
    out = io.StringIO()
    lines = JsonLines(out)
    lines.write(items)
    lines.close()
    return out.getvalue()


numerics = st.builds(
    Numeric,
    st.just("dev"),
    st.sampled_from([Code.SPO2, Code.PULSE_RATE, Code.PERFUSION]),
    st.none() | st.integers(-1000, 1000) | finite,
    stamps,
    flags,
)
waves = st.builds(
    WaveformBlock,
    st.just("dev"),
    st.just(Code.PLETH),
    stamps,
    st.sampled_from([75.0, 62.5, 300.0]),
    st.lists(samples, min_size=1, max_size=30).map(np.array),
    flags,
)
nibp = st.builds(NibpReading, st.just("dev"), finite, finite, st.none(), stamps, flags)


@HYPO
@given(st.lists(numerics | waves | nibp, max_size=20))
def test_fast_lines_are_the_core_lines(items: list[Item]) -> None:
    assert fast(items) == core(items)


def test_a_long_stream_is_written_whole() -> None:
    items: list[Item] = [Numeric("dev", Code.SPO2, 97, Stamp(k / 3, k / 3)) for k in range(30_000)]
    assert fast(items) == core(items)
