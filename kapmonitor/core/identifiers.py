"""Patient and clinician identifiers: what a session may be filed under, and how one is found.

One definition for every way in (``record``, ``demo``, the start dialog): an identifier is
what is left after stripping surrounding blanks; it is not empty, holds no control character
(a newline would break every one-line-per-session listing, a tab every column) and is at most
:data:`MAX_LENGTH` characters (a pasted document is not an identifier). Finding sessions is one
rule too, for ``sessions list --patient`` and the review browser alike: the text typed matches
any part of the identifier, in any case.
"""

from __future__ import annotations

import unicodedata

from kapmonitor.core.errors import UserError

#: Unicode categories that break a line or a column: control characters (newline, tab, escape
#: sequences) and the line and paragraph separators. Format characters such as the zero-width
#: joiner stay allowed: some scripts' names need them.
BREAKING = frozenset({"Cc", "Zl", "Zp"})
#: Longer than any clinic's identifier or a clinician's full name, short enough for one line.
MAX_LENGTH = 200


def identifier_problem(text: str, what: str = "patient identifier") -> str | None:
    """Why ``text`` cannot be used as ``what``, in one sentence, or None (the start dialog shows
    it beside the field)."""
    value = text.strip()
    if not value:
        return f"the {what} is empty: enter it"
    if any(unicodedata.category(ch) in BREAKING for ch in value):
        return f"the {what} holds a control character (a line break or tab, say): remove it"
    if len(value) > MAX_LENGTH:
        return f"the {what} is {len(value)} characters long: at most {MAX_LENGTH}"
    return None


def check_identifier(text: str, what: str = "patient identifier", *, optional: bool = False) -> str:
    """``text`` stripped of surrounding blanks, or a :class:`UserError` saying why it cannot be
    used; ``optional``: an empty one is allowed (a clinician not named)."""
    if optional and not text.strip():
        return ""
    problem = identifier_problem(text, what)
    if problem is not None:
        raise UserError(problem)
    return text.strip()


def matches(query: str, identifier: str) -> bool:
    """Whether a search for ``query`` finds ``identifier``: any part of it, in any case; an
    empty query finds everything."""
    query = query.strip().casefold()
    return not query or query in identifier.casefold()


def one_line(identifier: str) -> str:
    """``identifier`` for a one-line listing: a line break or tab recorded before identifiers were
    checked (or imported from a file) is shown escaped, never breaking the line."""
    return "".join(
        ch.encode("unicode_escape").decode() if unicodedata.category(ch) in BREAKING else ch
        for ch in identifier
    )
