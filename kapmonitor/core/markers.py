"""The event markers a nurse sets with one key during a session.

The screen binds them to hotkeys; the review and the de-identified export read the first one
(dissociation) for the REMS sedation-dissociation observation.
"""

from __future__ import annotations

#: Markers a nurse sets with one key (the screen binds them to hotkeys).
MARKERS = ("dissociation", "nausea or vomiting", "anxiety", "intervention", "note")
