"""``decode``: a device's raw bytes (a capture or a plain byte file) into JSON lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import BinaryIO, TextIO

from devices.capture import MAGIC, READ_SIZE, CaptureReader, Kind, is_capture
from kapmonitor.cli.options import Subcommands
from kapmonitor.cli.shared import serial_driver_class, warn
from kapmonitor.core import jsonl
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Item, Stamp


def add_decode(subs: Subcommands) -> None:
    dec = subs.add_parser(
        "decode",
        help="decode raw device bytes into JSON lines",
        description="Decode a device's raw bytes (a file, or - for stdin) into JSON lines.",
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
        return open(name, "rb")  # closed by the caller
    except OSError as exc:
        raise UserError(f"cannot read '{name}': {exc.strerror}") from None


def _timed_chunks(
    stream: BinaryIO, name: str, protocol: str | None
) -> tuple[str, Iterator[tuple[float, bytes]]]:
    """The device's bytes as (seconds from the start, chunk) pairs, read from ``stream`` as
    they are wanted (any input size in bounded memory), and the protocol."""
    head = stream.read(len(MAGIC))
    if is_capture(head):
        reader = CaptureReader(stream, name, already_read=head)
        return protocol or reader.header.protocol, _capture_chunks(reader)
    if protocol is None:
        raise UserError(f"'{name}' is a plain byte file: say which protocol with --protocol")
    return protocol, _plain_chunks(stream, head, serial_driver_class(protocol).byte_rate)


def _capture_chunks(reader: CaptureReader) -> Iterator[tuple[float, bytes]]:
    for record in reader.records():
        if record.kind is Kind.FROM_DEVICE:
            yield record.t, record.data
    if reader.damage:
        warn(reader.damage)


def _plain_chunks(stream: BinaryIO, head: bytes, rate: float) -> Iterator[tuple[float, bytes]]:
    """A plain byte file has no arrival times: place each byte where the device's own rate puts
    it, in 10 ms steps, so that t is seconds from the start of the stream."""
    step = max(1, int(rate / 100))
    pending, done = head, 0  # bytes not yet in a step; bytes before them
    while True:
        more = stream.read(step * max(1, READ_SIZE // step))
        pending += more
        whole = len(pending) if not more else len(pending) - len(pending) % step
        for start in range(0, whole, step):
            piece = pending[start : start + step]
            yield (done + start + len(piece)) / rate, piece
        pending, done = pending[whole:], done + whole
        if not more:
            return


def cmd_decode(args: argparse.Namespace, out: TextIO) -> int:
    if args.protocol is not None:
        serial_driver_class(args.protocol)  # a wrong name is refused before any input is read
    name = "standard input" if args.file == "-" else args.file
    stream = _open_input(args.file)
    written = 0

    def write(items: Sequence[Item]) -> None:
        nonlocal written
        for item in items:
            written += 1
            for record in jsonl.records(item, 0.0):
                out.write(jsonl.dumps(record) + "\n")

    try:
        protocol, chunks = _timed_chunks(stream, name, args.protocol)
        parser = serial_driver_class(protocol).parser_class(args.file)
        parser.begin(Stamp(0.0, 0.0))  # t counts from the stream's start: nothing came before
        for t, chunk in chunks:  # items are written as they come: nothing waits for the end
            write(parser.feed(chunk, Stamp(t, t)))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    write(parser.flush())  # what a parser holds back for a block the file ended inside
    stats = parser.stats
    errors = (
        f"{stats.checksum_errors} checksum errors, {stats.framing_errors} framing errors, "
        f"{stats.bytes_discarded} bytes skipped"
    )
    if not written and not stats.frames_ok and stats.bytes_in:
        raise UserError(
            f"{name}: nothing decoded from {stats.bytes_in} bytes ({errors}): these bytes do not "
            f"look like {protocol}; is it another protocol?"
        )
    if stats.checksum_errors or stats.framing_errors or stats.bytes_discarded:
        warn(f"{args.file}: {stats.frames_ok} good frames, {errors}")
    return 0
