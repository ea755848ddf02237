"""Every command on every malformed input: one plain line on stderr, exit status 2, no traceback.

Each case runs the real command as its own process, as a user would: a damaged or read-only
database, a mistyped database path, a database URL with an impossible port (and one with a
password in it), a truncated .vital file, WFDB records with impossible values or sampling rates.
Nothing in the line may be SQL, a patient identifier or a password.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from kapmonitor.cli import main
from tests.cli_process import kapmonitor

PATIENT = "P-SECRET-4711"
PASSWORD = "hunter2-secret"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The malformed inputs, each made from a real recording."""
    folder = tmp_path_factory.mktemp("malformed")
    good = folder / "good.sqlite3"
    argv = ["record", "--device", "sim:typical", "--speed", "20000", "--duration", "40m",
            "--patient", PATIENT, "--no-waves", "--db", f"sqlite:///{good}"]  # fmt: skip
    assert main(argv, out=io.StringIO()) == 0
    vital = folder / "good.vital"
    export = ["export", "1", "--format", "vital", "-o", str(vital), "--db", f"sqlite:///{good}"]
    assert main(export) == 0

    damaged = folder / "damaged.sqlite3"
    shutil.copy(good, damaged)
    data = bytearray(damaged.read_bytes())
    noise = random.Random(12)
    start, end = len(data) // 10, len(data) * 9 // 10  # the header page survives
    data[start:end] = noise.randbytes(end - start)
    damaged.write_bytes(bytes(data))

    read_only = folder / "read-only.sqlite3"
    shutil.copy(good, read_only)
    read_only.chmod(0o444)

    truncated = folder / "truncated.vital"
    truncated.write_bytes(vital.read_bytes()[: vital.stat().st_size * 6 // 10])

    n = 300
    sane = np.column_stack([np.full(n, 97.0), np.full(n, 72.0)])
    impossible = np.column_stack([np.full(n, 970.0), np.full(n, 72.0)])  # SpO2 at the wrong gain
    with warnings.catch_warnings():  # wfdb's own deprecation warnings, not ours to report
        warnings.simplefilter("ignore")
        wfdb = pytest.importorskip("wfdb")
    for name, signal in (("sane", sane), ("impossible", impossible)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wfdb.wrsamp(name, fs=1, units=["%", "bpm"], sig_name=["SpO2", "HR"], p_signal=signal,
                    fmt=["16", "16"], adc_gain=[10, 10], baseline=[0, 0],
                    write_dir=str(folder))  # fmt: skip
    header = (folder / "sane.hea").read_text()
    for name, rate in (("negative", "-1"), ("zero", "0"), ("nan", "nan")):
        (folder / f"{name}.dat").write_bytes((folder / "sane.dat").read_bytes())
        text = header.replace("sane 2 1 ", f"{name} 2 {rate} ", 1).replace(
            "sane.dat", f"{name}.dat"
        )
        (folder / f"{name}.hea").write_text(text)
    return {
        "good": good,
        "vital": vital,
        "damaged": damaged,
        "read-only": read_only,
        "truncated": truncated,
        **{k: folder / k for k in ("impossible", "negative", "zero", "nan")},
        "folder": folder,
    }


READ = {
    "sessions list": ["sessions", "list"],
    "sessions show": ["sessions", "show", "1"],
    "export": ["export", "1", "--format", "csv", "-o", "{folder}/out.csv"],
}
WRITE = {
    "record": ["record", "--device", "sim:typical", "--duration", "1m", "--patient", PATIENT],
    "import": ["import", "{vital}", "--patient", PATIENT],
}
BAD_URLS = {
    "port 99999": "postgresql+psycopg://kap@127.0.0.1:99999/kap",
    "port abc": "postgresql+psycopg://kap@127.0.0.1:abc/kap",
    "password in a bad URL": f"postgresql+psycopg://kap:{PASSWORD}@127.0.0.1:abc/kap",
    "password, port 0": f"postgresql+psycopg://kap:{PASSWORD}@127.0.0.1:0/kap",
}

CASES = [
    *(
        pytest.param(cmd, url, False, id=f"{name}-{why}")
        for name, cmd in {**READ, **WRITE}.items()
        for why, url in BAD_URLS.items()
    ),
    *(pytest.param(cmd, "{typo}", False, id=f"{name}-mistyped path") for name, cmd in READ.items()),
    pytest.param(READ["sessions show"], "{damaged}", False, id="sessions show-damaged pages"),
    pytest.param(READ["export"], "{damaged}", False, id="export-damaged pages"),
    *(
        pytest.param(cmd, "{read-only}", True, id=f"{name}-read-only")
        for name, cmd in WRITE.items()
    ),
    *(
        pytest.param(["import", f"{{{what}}}"], "{scratch}", False, id=f"import-{what}")
        for what in ("truncated", "impossible", "negative", "zero", "nan")
    ),
]


@pytest.mark.parametrize(("command", "db", "as_user"), CASES)
def test_one_line_exit_2_no_traceback(
    command: list[str], db: str, as_user: bool, files: dict[str, Path]
) -> None:
    names = {k: str(v) for k, v in files.items()}
    names["typo"] = str(files["folder"] / "typo" / "kapmonitor.sqlite3")
    names["scratch"] = str(files["folder"] / f"scratch-{os.urandom(4).hex()}.sqlite3")
    url = db.format_map(names)
    if not url.startswith("postgresql"):
        url = f"sqlite:///{url}"
    argv = [arg.format_map(names) for arg in command]
    result = kapmonitor(*argv, "--db", url, as_user=as_user)
    err = result.stderr
    assert result.returncode == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("kapmonitor: "), err
    for secret in (PASSWORD, PATIENT, "SELECT", "INSERT", "[SQL", "[parameters"):
        assert secret not in err
    assert not (files["folder"] / "typo").exists()  # a mistyped path is not created


def test_what_a_truncated_vital_file_held_is_imported_and_marked_interrupted(
    files: dict[str, Path], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    result = kapmonitor("import", str(files["truncated"]), "--db", url)
    assert result.returncode == 2 and "is truncated" in result.stderr
    assert "marked interrupted" in result.stderr
    session_id = result.stdout.strip()
    listed = kapmonitor("sessions", "list", "--db", url).stdout
    assert f"{session_id}  " in listed and "interrupted" in listed
    shown = kapmonitor("sessions", "show", session_id, "--db", url).stdout
    assert int(shown.split(" numerics")[0].rsplit("\n", 1)[-1]) > 0  # what it held is kept
