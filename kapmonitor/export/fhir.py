"""FHIR R4 export: the session as a Bundle of type "collection", in JSON.

What is in it:

- a Patient whose identifier is the clinic's patient id (or the pseudonym);
- one Device per device, named as the user named it, with its protocol and port as properties
  and its serial number;
- an Encounter for the session: its period, status, and the clinician and operator as
  participants (by name only);
- a MedicationAdministration at T0 (the effective dose event) with the drug, route and dose;
- one vital-signs Observation per stored numeric and vendor value, every one of them (no
  thinning): coded with LOINC where one exists *and* the IEEE 11073 MDC code
  (``urn:iso:std:iso:11073:10101``), SpO2 with 59408-5 and 2708-6 as US Core's pulse-oximetry
  profile asks; ``valueQuantity`` in UCUM; a missing value is a ``dataAbsentReason`` ("error"
  when the device said why, else "unknown"), never 0; flags are a note ("flags: …");
- one blood-pressure panel Observation (85354-9) per NIBP reading, with systolic (8480-6),
  diastolic (8462-4) and mean (8478-0) components;
- one Observation per sedation or dissociation score (MOAA/S, dissociation rating, CADSS), in
  the category "survey" (an assessment, not a vital sign), coded only with its IEEE 11073 code
  from the range 11073-10101 keeps for private use (no LOINC code exists for them; see
  ``kapmonitor/core/codes.py``), ``{score}`` as its UCUM unit, its scorer as the performer (by
  name, left out when de-identified) and no Device: nobody's monitor measured it.

Not in it: waveforms (a 2-hour pleth is 720 000 samples; use the vital export), the alarm log
and session events other than the dose (CSV has them). Resources refer to one another by
``urn:uuid:`` full URLs made from the session uid, so exporting one session twice gives the
same file. The JSON is built from plain dicts: no FHIR library is needed at run time.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, BinaryIO

from kapmonitor.core.codes import Code
from kapmonitor.core.model import Flags, NibpReading
from kapmonitor.export import (
    Row,
    flag_text,
    iso_utc,
    measurement_rows,
    patient_id,
    person,
)
from kapmonitor.export import devices as device_sources
from kapmonitor.record.session import SessionRecord, SessionStatus

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: Vendor values (no IEEE 11073 code) are coded under this local system with their key.
VENDOR = "urn:kapmonitor:device-value"
SOURCE_SYSTEM = "urn:kapmonitor:device-source"
SESSION_SYSTEM = "urn:kapmonitor:session-uid"

#: LOINC display names, for the codes kapmonitor uses.
LOINC_NAMES = {
    "59408-5": "Oxygen saturation in Arterial blood by Pulse oximetry",
    "2708-6": "Oxygen saturation in Arterial blood",
    "8889-8": "Heart rate by Pulse oximetry",
    "8867-4": "Heart rate",
    "8480-6": "Systolic blood pressure",
    "8462-4": "Diastolic blood pressure",
    "8478-0": "Mean blood pressure",
    "85354-9": "Blood pressure panel with all children optional",
    "9279-1": "Respiratory rate",
    "19891-1": "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration",
}
#: Extra LOINC codes a profile asks for besides the code's own.
EXTRA_LOINC = {Code.SPO2.value: ("2708-6",)}
#: The IEEE 11073 code of the NIBP compound (the parts are 150021-150023).
MDC_NIBP = (150020, "MDC_PRESS_BLD_NONINV")
BP_PANEL = "85354-9"

#: Units that are UCUM codes as written, for the dose.
UCUM_DOSE_UNITS = {"mg", "ug", "g", "mg/kg", "ug/kg", "mL", "mg/mL"}

Json = dict[str, Any]


def write(record: SessionRecord, out: BinaryIO, *, deidentify: bool = False) -> None:
    """Write the session as a FHIR R4 collection Bundle (JSON) to ``out``."""
    out.write(json.dumps(bundle(record, deidentify=deidentify), separators=(",", ":")).encode())


def bundle(record: SessionRecord, *, deidentify: bool = False) -> Json:
    """The Bundle as plain dicts."""
    info = record.info
    ids = _Ids(info.uid)
    patient = ids.url("patient")
    encounter = ids.url("encounter")
    devices = {source: ids.url(f"device/{source}") for source in device_sources(record)}
    entries: list[Json] = [
        {"fullUrl": patient, "resource": _patient(record, deidentify)},
    ]
    known = {d.source: d for d in record.devices}
    for source, url in devices.items():
        entries.append({"fullUrl": url, "resource": _device(source, known.get(source), deidentify)})
    entries.append({"fullUrl": encounter, "resource": _encounter(record, patient, deidentify)})
    if record.dose_stamp is not None:
        entries.append(
            {
                "fullUrl": ids.url("dose"),
                "resource": _dose(record, patient, encounter, deidentify),
            }
        )
    refs = {"subject": {"reference": patient}, "encounter": {"reference": encounter}}
    for n, row in enumerate(measurement_rows_without_nibp(record)):
        obs = _observation(row, refs, None if row.score else devices[row.source])
        entries.append({"fullUrl": ids.url(f"obs/{n}"), "resource": obs})
    for n, reading in enumerate(record.nibp):
        obs = _bp_panel(reading, refs, devices[reading.source])
        entries.append({"fullUrl": ids.url(f"bp/{n}"), "resource": obs})
    return {
        "resourceType": "Bundle",
        "identifier": {"system": SESSION_SYSTEM, "value": info.uid},
        "type": "collection",
        "timestamp": iso_utc(info.ended if info.ended is not None else info.started),
        "entry": entries,
    }


def measurement_rows_without_nibp(record: SessionRecord) -> list[Row]:
    """Numerics and vendor values; NIBP readings are panels of their own."""
    nibp = {Code.NIBP_SYS.value, Code.NIBP_DIA.value, Code.NIBP_MEAN.value}
    return [r for r in measurement_rows(record) if not (r.info is not None and r.code in nibp)]


class _Ids:
    """Stable ``urn:uuid:`` URLs, one per resource, derived from the session uid."""

    def __init__(self, uid: str) -> None:
        try:
            self._ns = uuid.UUID(uid)
        except ValueError:
            self._ns = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:kapmonitor:session:{uid}")

    def url(self, name: str) -> str:
        return f"urn:uuid:{uuid.uuid5(self._ns, name)}"


def _patient(record: SessionRecord, deidentify: bool) -> Json:
    kind = "Pseudonym (de-identified export)" if deidentify else "Patient identifier"
    return {
        "resourceType": "Patient",
        "identifier": [{"type": {"text": kind}, "value": patient_id(record.info, deidentify)}],
    }


def _device(source: str, device: Any, deidentify: bool) -> Json:
    res: Json = {
        "resourceType": "Device",
        "identifier": [{"system": SOURCE_SYSTEM, "value": source}],
        "deviceName": [{"name": source, "type": "user-friendly-name"}],
    }
    if device is None:
        return res
    if device.serial_number and not deidentify:
        res["serialNumber"] = device.serial_number
    res["property"] = [
        {"type": {"text": key}, "valueCode": [{"text": value}]}
        for key, value in (("protocol", device.protocol), ("port", device.port))
        if value
    ]
    return res


def _encounter(record: SessionRecord, patient: str, deidentify: bool) -> Json:
    info = record.info
    period = {"start": iso_utc(info.started)}
    if info.ended is not None:
        period["end"] = iso_utc(info.ended)
    if info.ended is not None:
        status = "finished"
    else:
        status = "in-progress" if info.status is SessionStatus.ACTIVE else "unknown"
    res: Json = {
        "resourceType": "Encounter",
        "identifier": [{"system": SESSION_SYSTEM, "value": info.uid}],
        "status": status,
        "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "type": [{"text": "Ketamine-assisted psychotherapy session"}],
        "subject": {"reference": patient},
        "period": period,
    }
    participants = []
    for role, code, name in (
        ("clinician", "ATND", info.clinician),
        ("operator", "PART", info.operator),
    ):
        if person(name, deidentify):
            participants.append(
                {
                    "type": [{"coding": [{"system": PARTICIPATION, "code": code}], "text": role}],
                    "individual": {"display": name},
                }
            )
    if participants:
        res["participant"] = participants
    return res


def _dose(record: SessionRecord, patient: str, encounter: str, deidentify: bool) -> Json:
    info = record.info
    stamp = record.dose_stamp
    assert stamp is not None
    event = next((e for e in record.events if e.kind == "dose" and e.stamp == stamp), None)
    res: Json = {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "medicationCodeableConcept": {
            "text": info.drug.value if info.drug is not None else "drug not recorded"
        },
        "subject": {"reference": patient},
        "context": {"reference": encounter},
        "effectiveDateTime": iso_utc(stamp.wall),
    }
    if person(info.clinician, deidentify):
        res["performer"] = [{"actor": {"display": info.clinician}}]
    if event is not None and event.text:
        res["note"] = [{"text": event.text}]
    dosage: Json = {}
    if info.route is not None:
        dosage["route"] = {"text": info.route.value}
    if info.dose is not None:
        dose: Json = {"value": info.dose, "unit": info.dose_unit}
        if info.dose_unit in UCUM_DOSE_UNITS:
            dose |= {"system": UCUM, "code": info.dose_unit}
        dosage["dose"] = dose
    if dosage:
        res["dosage"] = dosage
    return res


def _coding(code: str, info: Any) -> Json:
    """LOINC (where one exists) and the IEEE 11073 code; a vendor key under a local system."""
    if info is None:
        return {"coding": [{"system": VENDOR, "code": code}], "text": code}
    codings = []
    for loinc in (info.loinc, *EXTRA_LOINC.get(code, ())):
        if loinc:
            codings.append({"system": LOINC, "code": loinc, "display": LOINC_NAMES.get(loinc, "")})
    codings.append({"system": MDC, "code": str(info.mdc_code), "display": code})
    for c in codings:
        if not c.get("display"):
            del c["display"]
    return {"coding": codings, "text": info.label}


def _quantity(value: float, unit: str) -> Json:
    q: Json = {"value": value}
    if unit:
        q |= {"unit": unit, "system": UCUM, "code": unit}
    return q


def _absent(flags: Flags) -> Json:
    reason = "error" if flags else "unknown"
    res: Json = {"coding": [{"system": ABSENT, "code": reason}]}
    if flags:
        res["text"] = flag_text(flags)
    return res


def _category(code: str, display: str) -> list[Json]:
    return [{"coding": [{"system": CATEGORY, "code": code, "display": display}]}]


VITAL_SIGNS = _category("vital-signs", "Vital Signs")
#: An assessment scored by a clinician (MOAA/S, dissociation): FHIR's "survey" category.
SURVEY = _category("survey", "Survey")


def _observation(row: Row, refs: Json, device: str | None) -> Json:
    obs: Json = {"resourceType": "Observation", "status": "final"}
    category = SURVEY if row.score else VITAL_SIGNS if row.info is not None else []
    if category:
        obs["category"] = category
    obs["code"] = _coding(row.code, row.info)
    obs |= refs
    obs["effectiveDateTime"] = iso_utc(row.stamp.wall)
    if row.value is None:
        obs["dataAbsentReason"] = _absent(row.flags)
    else:
        obs["valueQuantity"] = _quantity(row.value, row.unit)
    if row.flags:
        obs["note"] = [{"text": f"flags: {flag_text(row.flags)}"}]
    if row.author:  # a score's scorer; None once de-identified
        obs["performer"] = [{"display": row.author}]
    if device is not None:
        obs["device"] = {"reference": device}
    return obs


def _bp_panel(reading: NibpReading, refs: Json, device: str) -> Json:
    components = []
    for code, value in reading.parts():
        comp: Json = {"code": _coding(code.value, code.info)}
        if value is None:
            comp["dataAbsentReason"] = _absent(reading.flags)
        else:
            comp["valueQuantity"] = _quantity(value, code.unit)
        components.append(comp)
    obs: Json = {
        "resourceType": "Observation",
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {
            "coding": [
                {"system": LOINC, "code": BP_PANEL, "display": LOINC_NAMES[BP_PANEL]},
                {"system": MDC, "code": str(MDC_NIBP[0]), "display": MDC_NIBP[1]},
            ],
            "text": "NIBP",
        },
        **refs,
        "effectiveDateTime": iso_utc(reading.stamp.wall),
    }
    if reading.flags:
        obs["note"] = [{"text": f"flags: {flag_text(reading.flags)}"}]
    obs["device"] = {"reference": device}
    obs["component"] = components
    return obs
