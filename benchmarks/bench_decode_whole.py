"""``kapmonitor decode`` as a user runs it: whole process, start-up included.

Run: ``python benchmarks/bench_decode_whole.py [PROTOCOL ...]``. Builds each protocol's 2-hour
stream with its emulator (as bench_decode.py does), then:

* **nonin2 against the plain reference.** ``kapmonitor decode --protocol nonin2`` of the 2-hour
  format-2 file (2.7 MB) and ``benchmarks/reference_nonin2.py`` (a plain loop, no project
  imports, the same JSON lines) run in turns, :data:`RUNS` times each; the ratio of the medians
  is printed beside its target (at most :data:`TARGET_RATIO`, aim :data:`AIM_RATIO`), and the
  two outputs must be identical.
* **Every protocol.** The median whole-process decode time and peak RSS of its 2-hour file: the
  peak must stay bounded (:data:`RSS_LIMIT_MB`) whatever the file's size.

Exits 1 if a target is missed.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_decode import build_stream
from benchmarks.machine import describe
from benchmarks.proc import KAPMONITOR, alternate, median_rss, median_s, run
from devices.registry import get_driver_class, protocol_names

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
TARGET_RATIO = 1.0  #: decode at most the plain reference's time…
AIM_RATIO = 0.5  #: …aiming for half of it
RSS_LIMIT_MB = 150.0  #: a 2-hour file decodes in bounded memory, not in memory of its size


def kapmonitor_decode(protocol: str, path: Path) -> list[str]:
    return [KAPMONITOR, "decode", "--protocol", protocol, str(path)]


def reference(path: Path) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "reference_nonin2.py"), str(path)]


def versus_reference(folder: Path) -> bool:
    path = folder / "nonin2.bin"
    ours, theirs = folder / "ours.jsonl", folder / "reference.jsonl"
    run(kapmonitor_decode("nonin2", path), stdout_path=str(ours))
    run(reference(path), stdout_path=str(theirs))
    same = filecmp.cmp(ours, theirs, shallow=False)
    commands = {"kapmonitor": kapmonitor_decode("nonin2", path), "ref": reference(path)}
    results = alternate(commands, RUNS)
    k, r = median_s(results["kapmonitor"]), median_s(results["ref"])
    ratio = k / r
    ok = ratio <= TARGET_RATIO and same
    print(
        f"nonin2 2 h ({path.stat().st_size:,} bytes), whole process, median of {RUNS}: "
        f"kapmonitor decode {k:.3f} s, plain reference {r:.3f} s: ratio {ratio:.2f} "
        f"(target <= {TARGET_RATIO:g}, aim {AIM_RATIO:g}) "
        f"{'OK' if ok else 'MISSED'}{'' if same else ' (outputs DIFFER)'}"
    )
    return ok


def per_protocol(folder: Path, names: list[str]) -> bool:
    ok = True
    for name in names:
        path = folder / f"{name}.bin"
        runs = alternate({name: kapmonitor_decode(name, path)}, RUNS)[name]
        rss = max(r.peak_rss_mb for r in runs)
        fine = rss <= RSS_LIMIT_MB
        ok &= fine
        print(
            f"  {name:>12}: {path.stat().st_size / 1e6:5.2f} MB, decode median "
            f"{median_s(runs):.3f} s, peak RSS median {median_rss(runs):.0f} MB "
            f"(max {rss:.0f}; limit {RSS_LIMIT_MB:g}) {'OK' if fine else 'TOO BIG'}"
        )
    return ok


def main(names: list[str]) -> int:
    print(f"whole-process decode on {describe()}")
    names = names or protocol_names()
    with tempfile.TemporaryDirectory(prefix="kap-bench-decode-") as tmp:
        folder = Path(tmp)
        for name in {*names, "nonin2"}:
            (folder / f"{name}.bin").write_bytes(build_stream(get_driver_class(name)))
        ok = versus_reference(folder)
        print(f"every protocol, 2 h each, median of {RUNS} whole-process runs:")
        ok &= per_protocol(folder, names)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
