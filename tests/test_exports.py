"""Exports of a recorded session, read back with independent libraries.

The session is a simulated 2-hour KAP session (tests/session_fixtures.py), built once per module.
Each format is read back with a reader kapmonitor does not share code with (the stdlib csv
module, fhir.resources, hl7apy, vitaldb) and compared value by value with the record: every
numeric, every NIBP part, the missing values (which must stay missing, never 0), the dose.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import re
import stat
import struct
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kapmonitor.core.codes import Code
from kapmonitor.core.errors import UserError
from kapmonitor.export import export_session
from kapmonitor.export import hl7 as hl7_export
from kapmonitor.export.deidentify import SHIFT_DAYS, deidentified
from kapmonitor.export.formats import FORMATS as REGISTRY
from kapmonitor.export.formats import ExportFormat
from kapmonitor.export.vital import device_names
from kapmonitor.record.session import DeviceInfo, EventRecord, SessionRecord
from tests.session_fixtures import (
    CLINICIAN,
    OPERATOR,
    PATIENT,
    SERIAL,
    SESSION_UID,
    SOURCE,
    START,
    build_session,
)

FORMATS = {"csv": "csv", "fhir": "json", "hl7": "hl7", "vital": "vital"}
MDC_TO_CODE = {str(c.info.mdc_code): c for c in Code}
Key = tuple[int, str, str]  #: (wall time in ms, device, code)


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> SessionRecord:
    rec = build_session(tmp_path_factory.mktemp("session"))
    # The fixture must hold what the tests are about, or they would pass vacuously.
    assert rec.dose_stamp is not None
    assert any(n.value is None for n in rec.numerics)
    assert any(r.systolic is None for r in rec.nibp)
    assert any(a.operator for a in rec.alarms)
    assert rec.waves and rec.values
    # Breathing (issue 17): every round trip below carries the rate, EtCO2 and the capnogram.
    assert {Code.RESP_RATE, Code.CO2_ET, Code.CO2_INSP_MIN} <= {n.code for n in rec.numerics}
    assert {w.code for w in rec.waves} == {Code.PLETH, Code.CO2}
    return rec


@pytest.fixture(scope="module")
def files(record: SessionRecord, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    paths = {fmt: folder / f"session.{ext}" for fmt, ext in FORMATS.items()}
    for fmt, path in paths.items():
        export_session(record, fmt, path)
    return paths


@pytest.fixture(scope="module")
def anon_files(record: SessionRecord, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("anon")
    paths = {fmt: folder / f"session.{ext}" for fmt, ext in FORMATS.items()}
    for fmt, path in paths.items():
        export_session(record, fmt, path, deidentify=True)
    return paths


def ms(wall: float) -> int:
    return round(wall * 1000)


def expected(record: SessionRecord) -> dict[Key, tuple[float | None, str, str]]:
    """Every stored value by (time, device, code): (value, unit, flags), NIBP as three parts."""
    out: dict[Key, tuple[float | None, str, str]] = {}

    def put(wall: float, source: str, code: str, value, unit: str, flags) -> None:
        key = (ms(wall), source, code)
        assert key not in out
        out[key] = (value, unit, ";".join(sorted(f.value for f in flags)))

    for n in record.numerics:
        put(n.stamp.wall, n.source, n.code.value, n.value, n.code.unit, n.flags)
    for r in record.nibp:
        for code, value in r.parts():
            put(r.stamp.wall, r.source, code.value, value, code.unit, r.flags)
    for v in record.values:
        put(v.stamp.wall, v.source, v.key, v.value, v.unit, v.flags)
    return out


def missing_keys(record: SessionRecord) -> set[Key]:
    return {k for k, (value, _, _) in expected(record).items() if value is None}


# --- CSV ----------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_csv_round_trip(record: SessionRecord, files: dict[str, Path]) -> None:
    rows = read_csv(files["csv"])
    dose = record.dose_stamp
    assert dose is not None
    got: dict[Key, tuple[float | None, str, str]] = {}
    for row in (r for r in rows if r["kind"] == "measurement"):
        wall = datetime.fromisoformat(row["wall_time"]).timestamp()
        assert row["wall_time"].endswith("Z") and len(row["wall_time"]) == 24
        minutes = float(row["minutes_from_dose"])
        assert minutes == pytest.approx((wall - dose.wall) / 60.0, abs=1e-4)
        value = float(row["value"]) if row["value"] else None
        got[(ms(wall), row["device"], row["code"])] = (value, row["unit"], row["flags"])
    assert got == expected(record)
    assert float(rows[[r["kind"] for r in rows].index("measurement")]["minutes_from_dose"]) < 0

    events = [r for r in rows if r["kind"] == "event"]
    assert [(r["event"], r["text"]) for r in events] == [(e.kind, e.text) for e in record.events]
    dose_row = next(r for r in events if r["event"] == "dose")
    assert dose_row["minutes_from_dose"] == "0.0000"

    alarms = [r for r in rows if r["kind"] == "alarm"]
    assert len(alarms) == len(record.alarms)
    for row, entry in zip(alarms, sorted(record.alarms, key=lambda a: a.stamp.wall), strict=True):
        assert row["event"] == entry.event.value
        assert row["condition"] == (entry.condition or "")
        assert (float(row["value"]) if row["value"] else None) == entry.value
        assert (float(row["limit"]) if row["limit"] else None) == entry.limit
        assert row["person"] == (entry.operator or "")

    session = {r["code"]: r["text"] for r in rows if r["kind"] == "session"}
    assert session["patient"] == PATIENT and session["uid"] == SESSION_UID
    device = {r["code"]: r["text"] for r in rows if r["kind"] == "device"}
    assert device == {"protocol": "sim", "port": "kap-export.toml", "serial_number": SERIAL}


def test_csv_without_dose_leaves_minutes_blank(record: SessionRecord, tmp_path: Path) -> None:
    no_dose = dataclasses.replace(
        record,
        numerics=record.numerics[:300],
        nibp=record.nibp[:2],
        events=[e for e in record.events if e.kind != "dose"],
    )
    export_session(no_dose, "csv", tmp_path / "s.csv")
    rows = [r for r in read_csv(tmp_path / "s.csv") if r["kind"] in ("measurement", "event")]
    assert len(rows) > 300
    assert all(r["minutes_from_dose"] == "" for r in rows)


# --- FHIR ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fhir_bundle(files: dict[str, Path]) -> Any:
    pytest.importorskip("fhir.resources")
    from fhir.resources.R4B.bundle import Bundle  # R4B: the release closest to R4 it ships

    return Bundle.model_validate_json(files["fhir"].read_bytes())


def resources(bundle: Any, kind: str) -> list[Any]:
    return [e.resource for e in bundle.entry if type(e.resource).__name__ == kind]


def fhir_time(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.timestamp()


def codings(concept: Any) -> dict[str, str]:
    """system -> code (the last one per system)."""
    return {c.system: c.code for c in concept.coding}


def test_fhir_round_trip(record: SessionRecord, fhir_bundle: Any) -> None:
    bundle = fhir_bundle
    assert bundle.type == "collection"
    urls = {e.fullUrl: type(e.resource).__name__ for e in bundle.entry}

    (patient,) = resources(bundle, "Patient")
    assert [i.value for i in patient.identifier] == [PATIENT]
    (device,) = resources(bundle, "Device")
    assert device.serialNumber == SERIAL
    assert device.deviceName[0].name == SOURCE
    props = {p.type.text: p.valueCode[0].text for p in device.property}
    assert props == {"protocol": "sim", "port": "kap-export.toml"}
    (encounter,) = resources(bundle, "Encounter")
    assert fhir_time(encounter.period.start) == record.info.started
    assert fhir_time(encounter.period.end) == record.info.ended
    (dose,) = resources(bundle, "MedicationAdministration")
    assert fhir_time(dose.effectiveDateTime) == record.dose_stamp.wall
    assert float(dose.dosage.dose.value) == record.info.dose
    assert dose.medicationCodeableConcept.text == "ketamine"

    got: dict[Key, tuple[float | None, str | None, str]] = {}
    panels = []
    for obs in resources(bundle, "Observation"):
        assert urls[obs.device.reference] == "Device"
        assert urls[obs.subject.reference] == "Patient"
        if obs.component:
            panels.append(obs)
            continue
        codes = codings(obs.code)
        mdc = codes.get("urn:iso:std:iso:11073:10101")
        if mdc is None:  # a vendor value
            name = codes["urn:kapmonitor:device-value"]
        else:
            code = MDC_TO_CODE[mdc]
            name = code.value
            assert obs.category[0].coding[0].code == "vital-signs"
            if code.info.loinc:
                assert code.info.loinc in [c.code for c in obs.code.coding]
            if code is Code.SPO2:
                assert {"59408-5", "2708-6"} <= {c.code for c in obs.code.coding}
        flags = obs.note[0].text.removeprefix("flags: ") if obs.note else ""
        key = (ms(fhir_time(obs.effectiveDateTime)), SOURCE, name)
        got[key] = _fhir_value(obs, flags)
    want = expected(record)
    nibp_codes = {Code.NIBP_SYS.value, Code.NIBP_DIA.value, Code.NIBP_MEAN.value}
    # A missing value has no quantity, so no unit either.
    assert got == {
        k: (v, unit if v is not None else None, flags)
        for k, (v, unit, flags) in want.items()
        if k[2] not in nibp_codes
    }

    assert len(panels) == len(record.nibp)
    for obs, reading in zip(panels, record.nibp, strict=True):
        assert "85354-9" in [c.code for c in obs.code.coding]
        assert ms(fhir_time(obs.effectiveDateTime)) == ms(reading.stamp.wall)
        parts = {}
        for comp in obs.component:
            loinc = codings(comp.code)["http://loinc.org"]
            parts[loinc] = float(comp.valueQuantity.value) if comp.valueQuantity else None
            if comp.valueQuantity is None:
                assert comp.dataAbsentReason is not None
            else:
                assert comp.valueQuantity.code == "mm[Hg]"
        assert parts == {
            "8480-6": reading.systolic,
            "8462-4": reading.diastolic,
            "8478-0": reading.mean,
        }


def _fhir_value(obs: Any, flags: str) -> tuple[float | None, str | None, str]:
    q = obs.valueQuantity
    if q is None:
        assert obs.dataAbsentReason is not None
        return None, None, flags
    assert obs.dataAbsentReason is None
    assert q.system == "http://unitsofmeasure.org" and q.code == q.unit
    return float(q.value), q.unit, flags


# --- HL7 ----------------------------------------------------------------------------------------


def hl7_messages(path: Path) -> list[str]:
    return [m for m in path.read_bytes().decode("utf-8").split("\n") if m.strip()]


def _obx_key_value(
    fields: list[str],
) -> tuple[Key, tuple[float | None, str], str, str]:
    """((time, device, code), (value, unit), OBX-2, OBX-11) of one OBX's fields."""
    ident = fields[3].split("^")
    code = MDC_TO_CODE[ident[0]].value if ident[2:3] == ["MDC"] else ident[0]
    wall = datetime.strptime(fields[14], "%Y%m%d%H%M%S.%f%z").timestamp()
    value = float(fields[5]) if fields[5] else None
    unit = fields[6].split("^")[0]
    return (ms(wall), fields[18], code), (value, unit), fields[2], fields[11]


def test_hl7_every_value_in_the_file(record: SessionRecord, files: dict[str, Path]) -> None:
    """All ~7 000 messages, split by hand (hl7apy is too slow for all of them; see below)."""
    got: dict[Key, tuple[float | None, str]] = {}
    for message in hl7_messages(files["hl7"]):
        segments = message.rstrip("\r").split("\r")
        assert [s[:3] for s in segments[:4]] == ["MSH", "PID", "PV1", "OBR"]
        for seg in segments[4:]:
            fields = seg.split("|")
            if seg.startswith("OBX") and fields[2] != "ST":
                key, value, _, _ = _obx_key_value(fields)
                assert key not in got
                got[key] = value
    assert got == {k: (v, unit) for k, (v, unit, _) in expected(record).items()}


def test_hl7_round_trip_with_hl7apy(record: SessionRecord, files: dict[str, Path]) -> None:
    """hl7apy reads the messages that matter (NIBP, missing values, events) and a sample."""
    from hl7apy.parser import parse_message

    want = expected(record)
    messages = hl7_messages(files["hl7"])
    chosen = [
        m
        for n, m in enumerate(messages)
        if n % 97 == 0 or "|NA|" in m or "NIBP" in m or "|ST|" in m or "NTE|" in m
    ]
    assert 150 < len(chosen) < 600
    seen_missing = seen_nibp = seen_dose = 0
    for text in chosen:
        msg = parse_message(text, find_groups=False)
        by_name: dict[str, list[Any]] = {}
        for seg in msg.children:
            by_name.setdefault(seg.name, []).append(seg)
        assert by_name["MSH"][0].msh_9.to_er7() == "ORU^R01^ORU_R01"
        assert by_name["MSH"][0].msh_12.to_er7() == "2.6"
        assert by_name["PID"][0].pid_3.to_er7() == f"{PATIENT}^^^^PI"
        for obx in by_name["OBX"]:
            fields = obx.to_er7().split("|")
            if fields[2] == "ST":
                if fields[5].startswith("dose:"):
                    assert ms(datetime.strptime(fields[14], "%Y%m%d%H%M%S.%f%z").timestamp()) == (
                        ms(record.dose_stamp.wall)
                    )
                    seen_dose += 1
                continue
            assert obx.obx_5.to_er7() == fields[5]
            key, (value, unit), kind, status = _obx_key_value(fields)
            assert obx.obx_11.to_er7() == status
            assert (value, unit) == want[key][:2]
            if value is None:
                assert (kind, status, fields[5]) == ("NA", "X", "")
                seen_missing += 1
            else:
                assert (kind, status) == ("NM", "F")
            seen_nibp += key[2] == Code.NIBP_SYS.value
    assert seen_missing >= len(missing_keys(record)) // 2
    assert seen_nibp == len(record.nibp) and seen_dose == 1


def test_hl7_mllp_framing(record: SessionRecord) -> None:
    short = dataclasses.replace(record, numerics=record.numerics[:30], nibp=[], values=[])
    out = io.BytesIO()
    hl7_export.write(short, out, mllp=True)
    frames = out.getvalue().split(b"\x1c\r")
    assert frames[-1] == b""
    instants = {n.stamp.wall for n in short.numerics}  # one ORU per instant's values
    assert len(frames) - 1 == len(instants) + len(short.events)
    assert all(f.startswith(b"\x0bMSH|") for f in frames[:-1])


# --- vital --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vital_file(files: dict[str, Path]) -> Any:
    with warnings.catch_warnings():
        # vitaldb imports wfdb, which warns about pandas deprecations on import.
        warnings.simplefilter("ignore")
        vitaldb = pytest.importorskip("vitaldb")
        return vitaldb.VitalFile(str(files["vital"]))


def test_vital_round_trip(record: SessionRecord, vital_file: Any) -> None:
    vf = vital_file
    labels = {c.value: c.info.label for c in Code}
    tracks = {f"{SOURCE}/{labels.get(code, code)}" for _, _, code in expected(record)}
    waves = {f"{SOURCE}/{w.code.info.label}" for w in record.waves}  # pleth, capnogram
    assert set(vf.get_track_names()) == tracks | waves | {"EVENT", "ALARM"}
    assert vf.devs[SOURCE].port == "kap-export.toml"

    got: dict[Key, tuple[float | None, str, str]] = {}
    for name in tracks:
        trk = vf.trks[name]
        code = next((c for c, lab in labels.items() if f"{SOURCE}/{lab}" == name), None)
        code = code or name.split("/", 1)[1]
        for rec in trk.recs:
            got[(ms(rec["dt"]), SOURCE, code)] = (rec["val"], trk.unit, "")
    want = {
        k: (float(np.float32(v)), unit, "")
        for k, (v, unit, _) in expected(record).items()
        if v is not None
    }
    assert got == want

    # The same through the resampling reader: 1-s grid, missing values are NaN (never 0).
    spo2 = vf.to_numpy([f"{SOURCE}/SpO2"], 1)[:, 0]
    truth = np.full(len(spo2), np.nan)
    for n in record.numerics:
        if n.code is Code.SPO2 and n.value is not None:
            truth[round(n.stamp.wall - vf.dtstart)] = n.value
    np.testing.assert_array_equal(spo2, truth.astype(np.float32))

    # Pleth: float32 samples, invalid (probe off) samples NaN.
    pleth = vf.trks[f"{SOURCE}/Pleth"]
    assert pleth.srate == 100
    samples = np.concatenate([r["val"] for r in pleth.recs])
    pleths = [b for b in record.waves if b.code is Code.PLETH]
    original = np.concatenate([b.samples for b in pleths])
    np.testing.assert_allclose(samples, original, rtol=0, atol=1e-7, equal_nan=True)
    assert np.isnan(original).any()
    assert pleth.recs[0]["dt"] == pleths[0].stamp.wall
    # The capnogram: its own track, mmHg as float32.
    co2 = vf.trks[f"{SOURCE}/CO2"]
    assert co2.srate == 20 and co2.unit == "mm[Hg]"
    co2_original = np.concatenate([b.samples for b in record.waves if b.code is Code.CO2])
    co2_samples = np.concatenate([r["val"] for r in co2.recs])
    np.testing.assert_allclose(co2_samples, co2_original, rtol=1e-6, atol=1e-6)
    assert co2_original.max() > 25.0  # breaths, not a flat line
    wave = vf.to_numpy([f"{SOURCE}/Pleth"], 0.01)[:, 0]
    np.testing.assert_allclose(wave[: len(original)], original, atol=1e-7, equal_nan=True)

    events = [(ms(r["dt"]), r["val"]) for r in vf.trks["EVENT"].recs]
    assert (ms(record.dose_stamp.wall), f"dose: dose given (scenario timeline) ({SOURCE})") in (
        events
    )
    assert len(events) == len(record.events)
    assert len(vf.trks["ALARM"].recs) == len(record.alarms)


def test_vital_device_names_are_clean() -> None:
    record = SessionRecord(
        info=None,  # type: ignore[arg-type]
        devices=[
            DeviceInfo("nonin2@/dev/ttyUSB0", "nonin2", "/dev/ttyUSB0"),
            DeviceInfo("masimo@COM3", "masimo", "COM3"),
            DeviceInfo("contec, left/hand", "contec", "/dev/ttyUSB1"),
            DeviceInfo("nonin2@ttyUSB0", "nonin2", "ttyUSB0"),
        ],
    )
    assert list(device_names(record).values()) == [
        "nonin2@ttyUSB0",
        "masimo@COM3",
        "contec_ left_hand",
        "nonin2@ttyUSB0-2",
    ]


# --- across formats -----------------------------------------------------------------------------


def contents(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".vital" else data


@pytest.mark.parametrize("fmt", FORMATS)
def test_deidentify_removes_patient_and_names(
    fmt: str, files: dict[str, Path], anon_files: dict[str, Path]
) -> None:
    plain, anon = contents(files[fmt]), contents(anon_files[fmt])
    for secret in (PATIENT, CLINICIAN, OPERATOR, SERIAL):
        assert secret.encode() not in anon, f"{secret} left in the de-identified {fmt} export"
    if fmt != "vital":  # the vital format has no place for a patient or names at all
        assert PATIENT.encode() in plain
        assert CLINICIAN.encode() in plain
        assert re.search(rb"anon-[0-9a-f]{8}", anon)  # a pseudonym stands in


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_values_stay_missing(
    fmt: str, record: SessionRecord, files: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    missing = missing_keys(record)
    failed = next(r for r in record.nibp if r.systolic is None)
    assert (ms(failed.stamp.wall), SOURCE, Code.NIBP_SYS.value) in missing
    found: dict[Key, Any] = {}
    if fmt == "csv":
        for row in read_csv(files["csv"]):
            if row["kind"] == "measurement":
                wall = datetime.fromisoformat(row["wall_time"]).timestamp()
                found[(ms(wall), row["device"], row["code"])] = row["value"]
        assert {found[k] for k in missing} == {""}
    elif fmt == "hl7":
        for message in hl7_messages(files["hl7"]):
            for seg in message.split("\r"):
                fields = seg.split("|")
                if seg.startswith("OBX") and fields[2] != "ST":
                    key, _, kind, status = _obx_key_value(fields)
                    found[key] = (kind, fields[5], status)
        assert {found[k] for k in missing} == {("NA", "", "X")}
    elif fmt == "fhir":
        bundle = request.getfixturevalue("fhir_bundle")
        for obs in resources(bundle, "Observation"):
            when = ms(fhir_time(obs.effectiveDateTime))
            for part in obs.component or [obs]:
                codes = codings(part.code)
                mdc = codes.get("urn:iso:std:iso:11073:10101")
                name = MDC_TO_CODE[mdc].value if mdc else codes["urn:kapmonitor:device-value"]
                absent = part.dataAbsentReason.coding[0].code if part.dataAbsentReason else None
                found[(when, SOURCE, name)] = (part.valueQuantity, absent)
        assert {found[k] for k in missing} == {(None, "error")}
    else:
        vf = request.getfixturevalue("vital_file")
        codes = {f"{SOURCE}/{c.info.label}": c.value for c in Code}
        for name in vf.get_track_names():
            trk = vf.trks[name]
            if trk.type == 2:  # numeric
                code = codes.get(name, name.split("/", 1)[-1])
                found.update({(ms(r["dt"]), SOURCE, code): r["val"] for r in trk.recs})
        # No record at all: VitalDB's "no value", read back as NaN.
        assert not missing & found.keys()
        spo2 = vf.to_numpy([f"{SOURCE}/SpO2"], 1)[:, 0]
        off = [round(k[0] / 1000 - vf.dtstart) for k in missing if k[2] == Code.SPO2.value]
        assert off and np.isnan(spo2[off]).all()
    # A value that was there is never blank, and a missing one is never 0.
    present = [found[k] for k in expected(record) if k not in missing and k in found]
    assert present and all(p not in ("", None, ("NA", "", "X")) for p in present)


def test_unknown_format_is_a_user_error(record: SessionRecord, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown export format 'xlsx'"):
        export_session(record, "xlsx", tmp_path / "s.xlsx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["missing-folder", "a-folder"])
def test_unwritable_path_is_a_user_error(record: SessionRecord, tmp_path: Path, where: str) -> None:
    small = dataclasses.replace(record, numerics=record.numerics[:10], waves=record.waves[:2])
    path = tmp_path / "nowhere" / "s.csv" if where == "missing-folder" else tmp_path
    for fmt in FORMATS:
        with pytest.raises(UserError) as info:
            export_session(small, fmt, path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message
        assert message.count(". ") == 0
    assert [p.name for p in tmp_path.iterdir()] == []


def test_failed_export_leaves_no_file(
    record: SessionRecord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kapmonitor.export import csv_export

    def broken(record: SessionRecord, out: Any, *, deidentify: bool = False) -> None:
        out.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv_export, "write", broken)
    target = tmp_path / "s.csv"
    target.write_text("an older export")
    with pytest.raises(UserError, match="no space left on device"):
        export_session(record, "csv", target)
    assert target.read_text() == "an older export"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


# --- de-identified: no identifier, no exact date, no free text, no UID ---------------------------

EVERY_FORMAT = {**FORMATS, "pdf": "pdf"}
#: A note and a marker a nurse typed, one naming the patient.
NOTE = f"{PATIENT} said her sister drove her here"
MARKER_TEXT = "note: lives on Elm Street"


def readable(path: Path) -> bytes:
    """The bytes a reader of the file sees: the PDF's extracted text added to its raw bytes."""
    data = contents(path)
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        data += " ".join(p.extract_text() for p in PdfReader(path).pages).encode()
    return data


@pytest.fixture(scope="module")
def noted(record: SessionRecord) -> SessionRecord:
    dose = record.dose_stamp
    assert dose is not None
    extra = [
        EventRecord(900, dose.shifted(600), "note", NOTE, None, OPERATOR),
        EventRecord(901, dose.shifted(900), "marker", MARKER_TEXT, None, OPERATOR),
    ]
    return dataclasses.replace(
        record, events=sorted([*record.events, *extra], key=lambda e: e.stamp.wall)
    )


@pytest.mark.parametrize("fmt", EVERY_FORMAT)
def test_a_deidentified_export_holds_no_identifier_date_note_or_uid(
    fmt: str, noted: SessionRecord, tmp_path: Path
) -> None:
    plain, anon = tmp_path / f"plain.{EVERY_FORMAT[fmt]}", tmp_path / f"anon.{EVERY_FORMAT[fmt]}"
    export_session(noted, fmt, plain)
    export_session(noted, fmt, anon, deidentify=True)
    identified, data = readable(plain), readable(anon)
    real_dates = (b"2026-01-01", b"20260101", struct.pack("<d", START))
    leaks = {
        "patient": PATIENT.encode(),
        "uid": SESSION_UID.encode(),
        "uid prefix": SESSION_UID[:8].encode(),
        "note": b"sister drove her",
        "typed marker": b"Elm Street",
        "earlier note": b"feels calm",
        "clinician": CLINICIAN.encode(),
    }
    for what, secret in leaks.items():
        assert secret not in data, f"the {what} is in the de-identified {fmt} export"
    assert not [d for d in real_dates if d in data], f"the real date is in the {fmt} export"
    # The test can fail: the identified export holds what the de-identified one must not
    # (FHIR carries no notes but the dose's).
    assert (b"sister drove her" in identified) == (fmt != "fhir")
    assert any(d in identified for d in real_dates)
    if fmt != "vital":  # the vital format has no place for a patient
        assert PATIENT.encode() in identified and SESSION_UID[:8].encode() in identified


def test_dates_move_by_one_random_offset_and_times_from_the_dose_stay_exact(noted: SessionRecord):
    first, second = deidentified(noted), deidentified(noted)
    shift = first.info.started - noted.info.started
    assert SHIFT_DAYS[0] * 86400 <= abs(shift) <= (SHIFT_DAYS[1] + 1) * 86400
    assert second.info.started - noted.info.started != shift  # drawn afresh for each export
    assert first.info.uid != second.info.uid != noted.info.uid
    assert first.info.patient != second.info.patient
    dose, moved_dose = noted.dose_stamp, first.dose_stamp
    assert dose is not None and moved_dose is not None
    for n, m in zip(noted.numerics, first.numerics, strict=True):
        assert m.stamp.wall - moved_dose.wall == pytest.approx(n.stamp.wall - dose.wall, abs=1e-6)
        assert (m.code, m.value, m.flags) == (n.code, n.value, n.flags)
    assert [r.systolic for r in first.nibp] == [r.systolic for r in noted.nibp]
    assert len(first.waves) == len(noted.waves) and len(first.alarms) == len(noted.alarms)


def test_system_texts_stay_and_typed_text_goes_unless_asked_for(noted: SessionRecord):
    anon = deidentified(noted)
    texts = {(e.kind, e.text) for e in anon.events}
    assert ("marker", "note") in texts  # the label the nurse picked; not what she typed
    assert ("note", "") in texts and not any("Elm" in t or "sister" in t for _, t in texts)
    assert {e.text for e in anon.events if e.kind == "device-state"} == {
        e.text for e in noted.events if e.kind == "device-state"
    }
    assert all(e.author is None for e in anon.events)
    assert all(a.operator is None for a in anon.alarms)
    kept = deidentified(noted, keep_notes=True)
    notes = [e.text for e in kept.events if e.kind == "note"]
    # Kept as typed, except the patient identifier, which becomes the pseudonym.
    assert f"{kept.info.patient} said her sister drove her here" in notes
    assert not any(PATIENT in e.text for e in kept.events)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_identified_exports_are_owner_only_and_deidentified_ones_follow_the_umask(
    record: SessionRecord, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        for fmt in ("csv", "vital"):
            identified, anon = tmp_path / f"id.{fmt}", tmp_path / f"anon.{fmt}"
            identified.write_bytes(b"")
            identified.chmod(0o644)  # an older export in the way: replaced by a private file
            export_session(record, fmt, identified)
            export_session(record, fmt, anon, deidentify=True)
            assert stat.S_IMODE(identified.stat().st_mode) == 0o600
            assert stat.S_IMODE(anon.stat().st_mode) == 0o644
    finally:
        os.umask(old)


# --- one registry: the command line and the review window offer the same formats ---------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A database URL holding a real 15-minute simulated session (dosed at 10); its id."""
    from kapmonitor.record.db import open_database
    from kapmonitor.record.store import Store
    from tests.session_fixtures import store_session

    folder = tmp_path_factory.mktemp("stored")
    url = f"sqlite:///{folder / 'export.sqlite3'}"
    store = Store(open_database(url))
    session_id = store_session(store, folder, duration_s=900.0)
    store.db.close()
    return url, session_id


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_format_exports_from_the_command_line(
    name: str, stored: tuple[str, int], tmp_path: Path
) -> None:
    from kapmonitor.cli import main as cli_main

    url, session_id = stored
    path = tmp_path / f"session{REGISTRY[name].suffix}"
    argv = ["export", str(session_id), "--format", name, "-o", str(path), "--db", url]
    assert cli_main(argv) == 0
    assert path.stat().st_size > 1000


def test_a_format_added_to_the_registry_is_offered_by_the_command_line(
    stored: tuple[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kapmonitor.cli import build_parser
    from kapmonitor.cli import main as cli_main

    extra = ExportFormat("csv-copy", "kapmonitor.export.csv_export", ".csv", "CSV copy", "a copy")
    argv = ["export", "1", "--format", "csv-copy", "-o", "x.csv"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)  # not a format yet
    monkeypatch.setitem(REGISTRY, extra.name, extra)
    assert build_parser().parse_args(argv).format == "csv-copy"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])  # the formats are listed in its help
    assert "a copy" in " ".join(capsys.readouterr().out.split())
    url, session_id = stored
    path = tmp_path / "copy.csv"
    assert cli_main(["export", str(session_id), "--format", "csv-copy", "-o", str(path),
                     "--db", url]) == 0  # fmt: skip
    assert path.read_text(encoding="utf-8-sig").startswith("kind,id,wall_time")
