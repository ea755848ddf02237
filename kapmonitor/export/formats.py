"""The export formats, listed once: the command line's ``export --format`` and the review window's
export buttons are both built from :data:`FORMATS`, so a format added here appears in both.

Each writer module is imported only when its format is written (the PDF report pulls in
reportlab), never when the list is read to build a menu or a ``--help``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from kapmonitor.core.errors import UserError
from kapmonitor.record.session import SessionRecord


class Writer(Protocol):
    """A format's ``write``: the whole record to ``out``; ``deidentify`` only labels the output."""

    def __call__(
        self, record: SessionRecord, out: BinaryIO, *, deidentify: bool = False
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One export format: what it is called, which module writes it, and how it is offered."""

    name: str  #: the ``--format`` value and the key of :data:`FORMATS`
    module: str  #: the module with ``write(record, out, *, deidentify)``, imported when used
    suffix: str  #: the file name ending offered for a new export
    label: str  #: the button's text
    description: str  #: what the format is, in the ``export`` command's help
    #: The writer uses the waveforms; without, the session is loaded without them (a 2-hour
    #: session's waveform blocks would be most of the load).
    waves: bool = True

    def writer(self) -> Writer:
        write: Writer = importlib.import_module(self.module).write
        return write


#: Every export format, in the order they are offered: name -> format.
FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("csv", "kapmonitor.export.csv_export", ".csv", "CSV", "CSV"),
        ExportFormat("fhir", "kapmonitor.export.fhir", ".json", "FHIR", "FHIR"),
        ExportFormat("hl7", "kapmonitor.export.hl7", ".hl7", "HL7", "HL7 v2"),
        ExportFormat(
            "vital", "kapmonitor.export.vital", ".vital", ".vital", "a VitalDB .vital file"
        ),
        ExportFormat("pdf", "kapmonitor.export.pdf", ".pdf", "PDF", "a PDF report", waves=False),
    )
}


def export_format(name: str) -> ExportFormat:
    """The format called ``name`` (case and spaces ignored); UserError naming the known ones."""
    fmt = FORMATS.get(str(name).strip().lower())
    if fmt is None:
        raise UserError(f"unknown export format '{name}' (available: {', '.join(sorted(FORMATS))})")
    return fmt


def formats_text() -> str:
    """The formats for a help line: "CSV, FHIR, HL7 v2, a VitalDB .vital file or a PDF report"."""
    *others, last = [f.description for f in FORMATS.values()]
    return f"{', '.join(others)} or {last}" if others else last
