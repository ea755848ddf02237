"""Start-up of the light commands, whole process: ``kapmonitor --help`` and
``kapmonitor decode --help`` against ``python -c pass`` (the interpreter's own start-up).

Run: ``python benchmarks/bench_startup.py``. Medians of :data:`RUNS` alternating runs; each
command must start in under :data:`TARGET_S` (a script decoding many captures pays it per file).
Exits 1 if one does not.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import describe
from benchmarks.proc import KAPMONITOR, alternate, median_s

RUNS = 9
TARGET_S = 0.2

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "kapmonitor --help": [KAPMONITOR, "--help"],
    "kapmonitor decode --help": [KAPMONITOR, "decode", "--help"],
}


def main() -> int:
    print(f"start-up on {describe()}, median of {RUNS} alternating runs:")
    results = alternate(COMMANDS, RUNS)
    base = median_s(results["python -c pass"])
    ok = True
    for name, runs in results.items():
        t = median_s(runs)
        line = f"  {name:>26}: {t * 1000:6.0f} ms"
        if name != "python -c pass":
            fast = t < TARGET_S
            ok &= fast
            line += f" ({(t - base) * 1000:.0f} ms over Python; target < {TARGET_S * 1000:.0f} ms) "
            line += "OK" if fast else "TOO SLOW"
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
