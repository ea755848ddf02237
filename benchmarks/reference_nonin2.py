"""A plain Nonin format-2 decoder: the reference ``kapmonitor decode --protocol nonin2`` is timed
against (benchmarks/bench_decode_whole.py).

One loop over the bytes, standard library only and NO project imports, so that its time is what
a careful script costs: the bar the real command must clear with all its checks. It reads a
plain byte file, finds each 125-byte packet (25 frames ``01 STATUS PLETH FLOAT CHK``, SYNC on
the first only, each checksum the sum of the first four bytes) and writes the same JSON lines
as ``kapmonitor decode``: pulse rate, SpO2 (t = the packet's end on the 75 frames/s clock) and
the 25 pleth samples (t = the packet's first frame).

Run: ``python benchmarks/reference_nonin2.py FILE > out.jsonl``.
"""

import json
import sys

FRAME = 5
PACKET = 125
FRAME_RATE = 75.0
SNSA, OOT, ARTF, SNSD, RPRF, GPRF, SYNC = 0x08, 0x10, 0x20, 0x40, 0x04, 0x02, 0x01


def flags_of(statuses):
    acc = 0
    red = False
    for s in statuses:
        acc |= s
        red = red or (s & (RPRF | GPRF)) == RPRF
    flags = []
    if acc & ARTF:
        flags.append("artifact")
    if red:
        flags.append("low-perfusion")
    if acc & OOT:
        flags.append("searching")
    if acc & (SNSA | SNSD):
        flags.append("sensor-off")
    return flags


def packet_ok(b, pos):
    for f in range(pos, pos + PACKET, FRAME):
        st = b[f + 1]
        if b[f] != 1 or not st & 0x80 or bool(st & SYNC) != (f == pos):
            return False
        if (b[f] + st + b[f + 2] + b[f + 3]) & 0xFF != b[f + 4]:
            return False
    return True


def main(path):
    with open(path, "rb") as f:
        b = f.read()
    out = sys.stdout
    dumps = json.dumps
    frames = 0  # frames decoded so far: the device's own clock
    pos, n = 0, len(b)
    while pos + PACKET <= n:
        if b[pos] != 1 or not packet_ok(b, pos):
            pos += 1
            continue
        statuses = b[pos + 1 : pos + PACKET : FRAME]
        fl = b[pos + 3 : pos + PACKET : FRAME]
        flags = flags_of(statuses)
        frames += 25
        end = round(frames / FRAME_RATE, 4)
        hr = ((fl[0] & 0x03) << 7) | (fl[1] & 0x7F)
        spo2 = fl[2] & 0x7F
        pleth = [
            None if statuses[i] & (SNSA | SNSD) else float(v)
            for i, v in enumerate(b[pos + 2 : pos + PACKET : FRAME])
        ]
        for code, value, unit in (
            ("MDC_PULS_OXIM_PULS_RATE", None if hr == 511 else hr, "/min"),
            ("MDC_PULS_OXIM_SAT_O2", None if spo2 == 127 else spo2, "%"),
        ):
            rec = {"t": end, "code": code, "value": value, "unit": unit, "flags": flags}
            out.write(dumps(rec, separators=(",", ":")) + "\n")
        rec = {
            "t": round((frames - 24) / FRAME_RATE, 4),
            "code": "MDC_PULS_OXIM_PLETH",
            "fs": FRAME_RATE,
            "samples": pleth,
            "flags": flags,
        }
        out.write(dumps(rec, separators=(",", ":")) + "\n")
        pos += PACKET


if __name__ == "__main__":
    main(sys.argv[1])
