"""``kapmonitor import`` (VitalDB .vital, PhysioNet WFDB) and the ``replay:SESSION`` device.

The PhysioNet records are real (tests/data/physionet, see tests/data/README.md); what they should
read as is taken from outside the reader: the DERIVED csv of the MIMIC-II numerics, and the 041s01
pleth decoded here from its format-212 bytes and checked against the header's checksum.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from kapmonitor.cli import main
from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.core.model import Stamp
from kapmonitor.record.db import open_database
from kapmonitor.record.session import SessionRecord, SessionStatus
from kapmonitor.record.store import Store
from tests.conftest import ROOT

DATA = Path(__file__).parent / "data" / "physionet"
NUMERICS = DATA / "s00001-2896-10-10-00-31n.hea"  # 1,936 minutes
SHORT = DATA / "s25047-2704-05-04-10-44n.hea"  # 72 minutes
PLETH = DATA / "041s01"  # the record path without extension


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/k.sqlite3"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def import_file(path: Path | str, url: str, *extra: str) -> int:
    code, out = run("import", str(path), "--db", url, *extra)
    assert code == 0
    return int(out.strip())


def load(url: str, session_id: int) -> SessionRecord:
    db = open_database(url)
    try:
        return Store(db).load_session(session_id)
    finally:
        db.close()


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# --- MIMIC-II numerics ------------------------------------------------------------------------


def derived_rows() -> list[dict[str, str]]:
    with open(DATA / "3975656n.DERIVED.csv", newline="") as f:
        return list(csv.DictReader(f))


def expected(cell: str) -> float | None:
    """What a DERIVED cell should import as: empty (invalid) and 0 (not measured) are None."""
    return None if cell == "" or float(cell) == 0 else float(cell)


def test_mimic_numerics_import_as_the_derived_csv_says(url: str) -> None:
    session_id = import_file(NUMERICS, url, "--patient", "s00001")
    record = load(url, session_id)
    info = record.info
    assert info.status is SessionStatus.COMPLETED
    assert info.patient == "s00001"
    # Base date and time from the header: 00:31:25.894 on 10/10/2896 (MIMIC's shifted dates).
    start = utc(2896, 10, 10, 0, 31, 25, 894000)
    assert info.started == pytest.approx(start, abs=1e-3)
    assert info.ended == pytest.approx(start + 1936 * 60, abs=1e-3)
    assert [d.source for d in record.devices] == ["s00001-2896-10-10-00-31n"]
    assert any(e.kind == "note" and "s00001" in e.text for e in record.events)

    rows = derived_rows()
    assert len(rows) == 1936
    by_code: dict[Code, list] = {}
    for n in record.numerics:
        by_code.setdefault(n.code, []).append(n)
    assert set(by_code) == {Code.HEART_RATE, Code.PULSE_RATE, Code.SPO2}
    for code, column in ((Code.HEART_RATE, "HR"), (Code.PULSE_RATE, "PULSE"), (Code.SPO2, "SpO2")):
        numerics = by_code[code]
        assert len(numerics) == 1936  # one a minute, missing ones as None
        for minute in (0, 1, 2, 14, 65, 500, 1000, 1935):
            n = numerics[minute]
            assert n.stamp.wall == pytest.approx(start + 60 * minute, abs=1e-3)
            want = expected(rows[minute][column])
            assert n.value == (None if want is None else pytest.approx(want, abs=1e-9)), (
                column,
                minute,
            )
        # Every value equals the csv, and a missing one is None, never 0.
        values = [n.value for n in numerics]
        assert values == [
            None if (w := expected(r[column])) is None else pytest.approx(w, abs=1e-9) for r in rows
        ]
        assert 0 not in values
    assert sum(n.value is None for n in by_code[Code.HEART_RATE]) == 46
    assert sum(n.value is None for n in by_code[Code.SPO2]) == 363

    # Unmapped signals are kept as device values under their names (RESP, ABPSys, …).
    keys = {v.key for v in record.values}
    assert {"RESP", "ABPSys", "ABPDias", "ABPMean"} <= keys
    resp = [v for v in record.values if v.key == "RESP"]
    assert resp[0].value == pytest.approx(23.0) and resp[0].unit == "/min"


def test_mimic_nibp_becomes_distinct_cuff_readings(url: str) -> None:
    record = load(url, import_file(NUMERICS, url))
    rows = derived_rows()
    start = record.info.started
    # The cuff readings, from the csv: a minute whose three values are new or changed.
    readings, previous = [], None
    for minute, r in enumerate(rows):
        values = tuple(expected(r[c]) for c in ("NBPSys", "NBPDias", "NBPMean"))
        if all(v is None for v in values):
            previous = None
            continue
        if values != previous:
            readings.append((minute, values))
        previous = values
    assert len(readings) == 152  # as ../shared/data/README.md counts them
    assert len(record.nibp) == 152
    for (minute, values), r in zip(readings, record.nibp, strict=True):
        assert r.stamp.wall == pytest.approx(start + 60 * minute, abs=1e-3)
        assert (r.systolic, r.diastolic, r.mean) == values
    assert (record.nibp[0].systolic, record.nibp[0].diastolic, record.nibp[0].mean) == (
        120,
        72,
        89,
    )
    assert all(0 not in (r.systolic, r.diastolic, r.mean) for r in record.nibp)


def test_repeated_nibp_values_are_one_reading(tmp_path: Path, url: str) -> None:
    """A reading the monitor repeats every minute until the next one is one cuff reading."""
    wfdb = _wfdb()
    sys_ = [np.nan, 120, 120, 120, 131, 131, np.nan, 131, 140]
    dia = [np.nan, 72, 72, 72, 66, 66, np.nan, 66, 70]
    mean = [np.nan, 89, 89, 89, 88, 88, np.nan, 88, 93]
    hr = [0, 60, 61, 62, 63, 64, 65, 66, 67]
    signal = np.column_stack([hr, sys_, dia, mean]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside wfdb
        wfdb.wrsamp(
            "rep", fs=1 / 60, units=["bpm", "mmHg", "mmHg", "mmHg"],
            sig_name=["HR", "NBPSys", "NBPDias", "NBPMean"], p_signal=signal, fmt=["16"] * 4,
            adc_gain=[10, 1, 1, 1], baseline=[0, 0, 0, 0], write_dir=str(tmp_path),
        )  # fmt: skip
    record = load(url, import_file(tmp_path / "rep.hea", url))
    got = [(r.systolic, r.diastolic, r.mean) for r in record.nibp]
    # Changed at minute 4; new after the gap at minute 7 (same values); changed at minute 8.
    assert got == [(120, 72, 89), (131, 66, 88), (131, 66, 88), (140, 70, 93)]
    assert [n.value for n in record.numerics][:2] == [None, 60]


def _wfdb():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb warns about pandas deprecations on import
        return pytest.importorskip("wfdb")


# --- pleth waveform record --------------------------------------------------------------------


def decode_212_pleth() -> tuple[np.ndarray, int, int]:
    """041s01's PLETH as ADC counts, decoded from the bytes; with its header init and checksum."""
    raw = np.fromfile(DATA / "041s01.dat", dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    first = raw[:, 0] | ((raw[:, 1] & 0x0F) << 8)
    second = raw[:, 2] | ((raw[:, 1] & 0xF0) << 4)
    samples = np.empty(2 * len(raw), dtype=np.int32)
    samples[0::2], samples[1::2] = first, second
    samples[samples >= 2048] -= 4096
    # A frame: III, I, V at 4 samples each (212x4), then ABP, PAP, PLETH, RESP at 1.
    frames = samples.reshape(-1, 16)
    header = (DATA / "041s01.hea").read_text().splitlines()
    fields = next(f for f in (line.split() for line in header) if f and f[-1] == "PLETH")
    return frames[:, 14], int(fields[5]), int(fields[6])


def test_pleth_record_imports_as_one_second_blocks(url: str) -> None:
    adc, initial, checksum = decode_212_pleth()
    assert adc[0] == initial
    total = int(adc.sum()) & 0xFFFF
    assert (total - 65536 if total >= 32768 else total) == checksum  # the decoding is right

    record = load(url, import_file(PLETH, url))
    assert record.info.started == utc(1994, 10, 26, 8, 26, 4)
    assert record.numerics == [] and record.nibp == [] and record.values == []
    waves = record.waves
    assert len(waves) == 8  # 8 s at 125 Hz; the ECG, ABP, PAP and RESP signals are left out
    assert all(w.code is Code.PLETH and w.fs == 125 and len(w.samples) == 125 for w in waves)
    assert [w.stamp.wall - record.info.started for w in waves] == pytest.approx(range(8))
    samples = np.concatenate([w.samples for w in waves])
    assert len(samples) == len(adc) == 1000
    gain = 2000.0  # ADC units per mV, from the header
    assert np.max(np.abs(samples * gain - adc)) <= 0.5  # within the ADC quantisation


# --- VitalDB .vital ---------------------------------------------------------------------------

T0 = 1767261600.0  # 2026-01-01T10:00:00Z


def write_vital(path: Path) -> np.ndarray:
    """A .vital file written by vitaldb itself, with VitalRecorder's usual track names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vitaldb = pytest.importorskip("vitaldb")
    pleth = (np.sin(np.arange(250) / 10.0) * 50 + 50).astype(np.float32)
    vf = vitaldb.VitalFile()
    vf.add_track("Solar8000/HR", [{"dt": T0 + 2 * i, "val": 60.0 + i} for i in range(5)])
    vf.add_track("Solar8000/PLETH_HR", [{"dt": T0 + 2 * i, "val": 59.0 + i} for i in range(5)])
    spo2 = [{"dt": T0 + 2 * i, "val": 97.3} for i in range(4)] + [
        {"dt": T0 + 8, "val": float("nan")}
    ]
    vf.add_track("Solar8000/PLETH_SPO2", spo2)
    for name, value in (("NIBP_SBP", 120.0), ("NIBP_DBP", 80.0), ("NIBP_MBP", 93.0)):
        vf.add_track(f"Solar8000/{name}", [{"dt": T0 + 3, "val": value}], unit="mmHg")
    vf.add_track("Solar8000/BT", [{"dt": T0 + 1, "val": 36.6}], unit="C")
    vf.add_track("SNUADC/PLETH", [{"dt": T0, "val": pleth}], srate=100)
    vf.add_track("SNUADC/ECG_II", [{"dt": T0, "val": pleth}], srate=100)
    vf.add_track("EVENT", [{"dt": T0 + 4, "val": "Case started"}])
    vf.dtstart, vf.dtend = T0, T0 + 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf.to_vital(str(path))
    return pleth


def test_vital_file_imports_with_vitaldb_track_names(tmp_path: Path, url: str) -> None:
    pleth = write_vital(tmp_path / "case.vital")
    record = load(url, import_file(tmp_path / "case.vital", url))
    assert record.info.started == T0
    assert {d.source for d in record.devices} == {"Solar8000", "SNUADC"}

    def series(code: Code) -> list[tuple[float, float | None]]:
        return [(n.stamp.wall - T0, n.value) for n in record.numerics if n.code is code]

    assert series(Code.HEART_RATE) == [(2.0 * i, 60.0 + i) for i in range(5)]
    assert series(Code.PULSE_RATE) == [(2.0 * i, 59.0 + i) for i in range(5)]
    # Float32 in the file, 97.3 again here (not 97.30000305); the NaN record is None.
    assert series(Code.SPO2) == [(0.0, 97.3), (2.0, 97.3), (4.0, 97.3), (6.0, 97.3), (8.0, None)]
    assert [(r.stamp.wall - T0, r.systolic, r.diastolic, r.mean) for r in record.nibp] == [
        (3.0, 120.0, 80.0, 93.0)
    ]
    assert [(v.key, v.value, v.unit, v.source) for v in record.values] == [
        ("BT", 36.6, "C", "Solar8000")
    ]
    assert [(w.code, w.fs, len(w.samples)) for w in record.waves] == [
        (Code.PLETH, 100.0, 100),
        (Code.PLETH, 100.0, 100),
        (Code.PLETH, 100.0, 50),
    ]  # ECG_II has no kapmonitor code: left out
    np.testing.assert_array_equal(np.concatenate([w.samples for w in record.waves]), pleth)
    markers = [(e.stamp.wall - T0, e.text) for e in record.events if e.kind == "marker"]
    assert markers == [(4.0, "Case started")]


def test_a_kapmonitor_vital_export_imports_back(tmp_path: Path, url: str) -> None:
    export = pytest.importorskip("kapmonitor.export")
    original = load(url, import_file(SHORT, url))
    export.export_session(original, "vital", tmp_path / "s.vital")
    again = load(url, import_file(tmp_path / "s.vital", url))

    def numerics(r: SessionRecord) -> list:
        return [
            (n.source, n.code, n.value, n.stamp.wall) for n in r.numerics if n.value is not None
        ]

    def nibp(r: SessionRecord) -> list:
        return [(n.source, n.systolic, n.diastolic, n.mean, n.stamp.wall) for n in r.nibp]

    assert numerics(again) == numerics(original)  # float32 in the file, read back exactly
    assert len(numerics(again)) > 100
    assert nibp(again) == nibp(original)
    assert [(v.key, v.value, v.unit) for v in again.values if v.value is not None] == [
        (v.key, v.value, v.unit) for v in original.values if v.value is not None
    ]


# --- bad files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "x.bin",
            b"\x00\x01 not a recording",
            "'{path}' is neither a .vital file nor a WFDB record",
        ),
        ("x.vital", b"plain text", "'{path}' cannot be read as a .vital file"),
        ("x.hea", b"this is no header\n", "'{path}' cannot be read as a WFDB record"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, url: str, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "kapmonitor", "import", str(path), "--db", url],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kapmonitor: " + message.format(path=path))
    assert not (tmp_path / "k.sqlite3").exists()  # nothing was created for a refused file


def test_missing_reader_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from kapmonitor.record import importers

    monkeypatch.setitem(sys.modules, "wfdb", None)
    with pytest.raises(UserError, match=r"pip install 'kapmonitor\[import\]'"):
        importers.read_recording(NUMERICS)


# --- replay:SESSION ---------------------------------------------------------------------------


def test_replay_plays_an_imported_session_into_a_new_one(url: str) -> None:
    original_id = import_file(SHORT, url)
    db = open_database(url)
    try:
        store = Store(db)
        info = store.session_info(original_id)
        dose = info.started + 600.5
        store.add_event(original_id, "dose", "ketamine 35 mg IM", "test", Stamp(600.5, dose))
    finally:
        db.close()
    original = load(url, original_id)

    code, out = run("record", "--device", f"replay:{original_id}", "--speed", "1e4", "--db", url)
    assert code == 0
    db = open_database(url)
    try:
        new_ids = [s.id for s in Store(db).list_sessions() if s.id != original_id]
    finally:
        db.close()
    assert len(new_ids) == 1
    replayed = load(url, new_ids[0])
    source = f"replay:{original_id}"

    def numerics(r: SessionRecord) -> list:
        t0 = r.numerics[0].stamp.wall
        return [(n.code, n.value, round(n.stamp.wall - t0, 3)) for n in r.numerics]

    assert len(original.numerics) == 72 * 3
    assert numerics(replayed) == numerics(original)
    assert {n.source for n in replayed.numerics} == {source}
    assert {d.source for d in replayed.devices} == {source}

    def nibp(r: SessionRecord) -> list:
        t0 = r.numerics[0].stamp.wall
        return [(n.systolic, n.diastolic, n.mean, round(n.stamp.wall - t0, 3)) for n in r.nibp]

    assert nibp(replayed) == nibp(original)
    assert [(v.key, v.value) for v in replayed.values] == [
        (v.key, v.value) for v in original.values
    ]
    # The dose is replayed at its time, as the new session's T0.
    assert replayed.dose_stamp is not None
    assert replayed.dose_stamp.wall - replayed.numerics[0].stamp.wall == pytest.approx(
        600.5, abs=1e-3
    )
    # Stamped in the replay device's clock (now), not the recording's (the year 2704).
    assert abs(replayed.numerics[0].stamp.wall - replayed.info.started) < 60
    assert '"t"' in out  # the jsonl stream on stdout


def test_replay_plays_waves(url: str) -> None:
    original_id = import_file(PLETH, url)
    code, _ = run("record", "--device", f"replay:{original_id}", "--speed", "100", "--db", url)
    assert code == 0
    db = open_database(url)
    try:
        new_id = max(s.id for s in Store(db).list_sessions())
    finally:
        db.close()
    original, replayed = load(url, original_id), load(url, new_id)
    assert len(replayed.waves) == len(original.waves) == 8
    for a, b in zip(original.waves, replayed.waves, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        assert b.stamp.wall - replayed.waves[0].stamp.wall == pytest.approx(
            a.stamp.wall - original.waves[0].stamp.wall, abs=1e-3
        )


@pytest.mark.parametrize(
    ("device", "message"),
    [("replay:999", "there is no session 999"), ("replay:abc", "'abc' is not a session id")],
)
def test_replay_of_a_missing_session_is_a_user_error(
    url: str, device: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("record", "--device", device, "--speed", "10", "--db", url)
    assert code == 2
    assert message in capsys.readouterr().err


def test_speed_is_refused_with_a_real_device(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(
        "record", "--device", "replay:1", "--device", "nonin2@/dev/null", "--speed", "10",
        "--db", url,
    )  # fmt: skip
    assert code == 2
    assert "--speed only applies" in capsys.readouterr().err
