"""``decode``: a device's raw bytes (a capture or a plain byte file) into JSON lines.

Large reads (:data:`~kapmonitor.cli.decode_clocks.READ_SIZE`) and output written as it comes:
any file decodes in bounded memory, and the parser is called a few times per read, not once per
10 ms of the device's stream. A plain file is placed on the device's own clock
(:mod:`kapmonitor.cli.decode_clocks`); a capture keeps its real arrival times.

What only a decode needs (the devices' registry, the parsers, numpy) is imported when it runs,
so that ``kapmonitor --help`` does not pay for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO, TextIO

from kapmonitor.cli.decode_clocks import READ_SIZE, Clock, clock_for, clocks_text
from kapmonitor.cli.options import Subcommands
from kapmonitor.core.errors import UserError

if TYPE_CHECKING:
    from devices.capture import CaptureReader


def add_decode(subs: Subcommands) -> None:
    dec = subs.add_parser(
        "decode",
        help="decode raw device bytes into JSON lines",
        description="Decode a device's raw bytes (a file, or - for stdin) into JSON lines.",
        epilog=(
            "Each line's t is seconds from the start of the stream. A capture (kapmonitor "
            "capture) keeps the real arrival time of every read; a plain byte file is placed on "
            "the device's own clock:\n" + clocks_text()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dec.add_argument("--protocol", help="wire protocol, e.g. nonin2 (a capture names its own)")
    dec.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="a capture or a byte file, or - (stdin)",
    )
    dec.set_defaults(func=cmd_decode)


def _open_input(name: str) -> BinaryIO:
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb", buffering=0)  # closed by the caller; reads are large already
    except OSError as exc:
        raise UserError(f"cannot read '{name}': {exc.strerror}") from None


def _timed_chunks(
    stream: BinaryIO, name: str, protocol: str | None
) -> tuple[str, bool, Iterator[tuple[float, bytes]]]:
    """The protocol, whether ``stream`` is a capture (real arrival times), and the device's
    bytes as (seconds from the start, chunk) pairs, read from ``stream`` as they are wanted (any
    input size in bounded memory)."""
    from devices.capture import MAGIC, CaptureReader, is_capture
    from kapmonitor.cli.shared import serial_driver_class

    head = _read_at_least(stream, len(MAGIC))
    if is_capture(head):
        reader = CaptureReader(stream, name, already_read=head)
        return protocol or reader.header.protocol, True, _capture_chunks(reader)
    if protocol is None:
        raise UserError(f"'{name}' is a plain byte file: say which protocol with --protocol")
    rate = serial_driver_class(protocol).byte_rate
    return protocol, False, _plain_chunks(stream, head, clock_for(protocol, rate))


def _read_at_least(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, or fewer only at the end (an unbuffered file or a pipe reads short)."""
    head = stream.read(size)
    while head and len(head) < size:
        more = stream.read(size - len(head))
        if not more:
            break
        head += more
    return head


def _capture_chunks(reader: CaptureReader) -> Iterator[tuple[float, bytes]]:
    from devices.capture import Kind
    from kapmonitor.cli.shared import warn

    for record in reader.records():
        if record.kind is Kind.FROM_DEVICE:
            yield record.t, record.data
    if reader.damage:
        warn(reader.damage)


def _plain_chunks(stream: BinaryIO, head: bytes, clock: Clock) -> Iterator[tuple[float, bytes]]:
    """A plain byte file has no arrival times: large reads, each placed by the device's clock."""
    block = head
    while True:
        more = stream.read(READ_SIZE)
        if block:
            yield from clock.pieces(block)
        if not more:
            break
        block = more
    yield from clock.end()


def cmd_decode(args: argparse.Namespace, out: TextIO) -> int:
    from kapmonitor.cli.jsonl_writer import JsonLines
    from kapmonitor.cli.shared import serial_driver_class, warn
    from kapmonitor.core.model import Stamp

    if args.protocol is not None:
        serial_driver_class(args.protocol)  # a wrong name is refused before any input is read
    name = "standard input" if args.file == "-" else args.file
    stream = _open_input(args.file)
    lines = JsonLines(out)
    try:
        protocol, captured, chunks = _timed_chunks(stream, name, args.protocol)
        parser = serial_driver_class(protocol).parser_class(args.file)
        parser.guessed_arrivals = not captured  # a plain file: the device's clock, if it has one
        parser.begin(Stamp(0.0, 0.0))  # t counts from the stream's start: nothing came before
        feed, write = parser.feed, lines.write
        for t, chunk in chunks:  # items are written as they come: nothing waits for the end
            write(feed(chunk, Stamp(t, t)))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    write(parser.flush())  # what a parser holds back for a block the file ended inside
    lines.close()
    stats = parser.stats
    errors = (
        f"{stats.checksum_errors} checksum errors, {stats.framing_errors} framing errors, "
        f"{stats.bytes_discarded} bytes skipped"
    )
    if not lines.written and not stats.frames_ok and stats.bytes_in:
        raise UserError(
            f"{name}: nothing decoded from {stats.bytes_in} bytes ({errors}): these bytes do not "
            f"look like {protocol}; is it another protocol?"
        )
    if stats.checksum_errors or stats.framing_errors or stats.bytes_discarded:
        warn(f"{args.file}: {stats.frames_ok} good frames, {errors}")
    return 0
