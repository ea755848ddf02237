"""How a user names a device: ``PROTOCOL@PORT``, ``sim:SCENARIO`` or ``replay:SESSION``."""

from __future__ import annotations

from dataclasses import dataclass

from kapmonitor.core.errors import UserError

SIM = "sim"
REPLAY = "replay"  #: a recorded session played back (kapmonitor/record/replay.py)


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device name; ``text`` is kept as the items' source so the user recognises it."""

    kind: str  #: a driver name from the registry: a protocol such as "nonin2", or "sim"
    target: str  #: the port or URL, or the scenario for the simulator
    text: str
    #: Driver options written after the protocol with "+": ``nonin7+set-format@/dev/ttyUSB0``.
    options: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> DeviceSpec:
        text = text.strip()
        if text.startswith(SIM + ":"):
            target = text[len(SIM) + 1 :]
            if not target:
                raise UserError(f"device '{text}' names no scenario: write sim:SCENARIO")
            return cls(SIM, target, text)
        if text.startswith(REPLAY + ":"):
            target = text[len(REPLAY) + 1 :].strip()
            if not target:
                raise UserError(f"device '{text}' names no session: write replay:SESSION")
            return cls(REPLAY, target, text)
        kind, sep, target = text.partition("@")
        if not sep or not kind or not target:
            raise UserError(
                f"device '{text}' is not of the form PROTOCOL@PORT "
                "(e.g. nonin2@/dev/ttyUSB0), sim:SCENARIO or replay:SESSION"
            )
        kind, *options = kind.lower().split("+")
        if not kind or not all(options):
            raise UserError(f"device '{text}': write options as PROTOCOL+OPTION@PORT")
        return cls(kind, target, text, frozenset(options))
