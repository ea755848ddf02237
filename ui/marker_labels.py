"""Where to put the labels of markers that lie close together on a time axis: stacked, not
overprinted.

Markers a nurse presses within a minute or two ("DOSE", "dissociation", "nausea or vomiting",
"note") sit a few pixels apart on a session-long axis, and labels drawn at one height overprint
into an unreadable smear. :func:`stack_levels` packs them like intervals on lines of text: each
label goes on the highest level where it overlaps no label already there, so two labels share a
level only when they do not touch. :func:`level_positions` turns levels into the fraction of the
plot's height a ``pyqtgraph.InfiniteLine`` label takes (``labelOpts={"position": ...}``).

Plain Python (no Qt): the live trends and review's plots both use it; they measure their
labels' widths in pixels with their own font and pass the pixels per x unit of their view.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Pixels kept free between two labels on one level.
GAP_PX = 6.0


def stack_levels(
    xs: Sequence[float],
    widths_px: Sequence[float],
    px_per_unit: float,
    *,
    gap_px: float = GAP_PX,
    max_levels: int | None = None,
) -> list[int]:
    """The level (0 = top) of each label starting at ``xs[i]`` (x units) and ``widths_px[i]``
    pixels wide, for a view of ``px_per_unit`` pixels per x unit.

    Labels are placed in order of x (ties keep their order). With ``max_levels``, a label that
    fits on no level goes on the level whose last label ends first (the least overlap).
    """
    if len(xs) != len(widths_px):
        raise ValueError("one width per label")
    if not px_per_unit > 0:
        raise ValueError("px_per_unit must be positive")
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ends: list[float] = []  #: per level, where its last label ends (pixels)
    levels = [0] * len(xs)
    for i in order:
        start = xs[i] * px_per_unit
        level = next((k for k, end in enumerate(ends) if end + gap_px <= start), None)
        if level is None:
            if max_levels is None or len(ends) < max_levels:
                level = len(ends)
                ends.append(0.0)
            else:
                level = min(range(len(ends)), key=ends.__getitem__)
        ends[level] = start + widths_px[i]
        levels[i] = level
    return levels


def levels_that_fit(label_px: float, plot_px: float, *, top: float = 0.97) -> int:
    """How many levels of labels ``label_px`` high fit from ``top`` down in a plot ``plot_px``
    high (at least one): pass it as ``max_levels`` so that no level wraps onto another."""
    if not (plot_px > 0 and label_px > 0):
        return 1
    return max(1, int((top - 0.02) / (label_px / plot_px)) + 1)


def level_positions(
    levels: Sequence[int], label_px: float, plot_px: float, *, top: float = 0.97
) -> list[float]:
    """The InfiniteLine label ``position`` (0 bottom .. 1 top of the plot) of each level, one
    label height (``label_px``, in a plot ``plot_px`` high) per level down from ``top``.

    Levels that would leave the plot wrap back to the top (a plot too short for them all).
    """
    if not plot_px > 0:
        return [top] * len(levels)
    step = label_px / plot_px
    per_column = levels_that_fit(label_px, plot_px, top=top)
    return [top - step * (level % per_column) for level in levels]
