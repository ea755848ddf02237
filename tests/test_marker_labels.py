"""Marker labels stacked, not overprinted (ui.marker_labels: plain Python)."""

from __future__ import annotations

import itertools

import pytest

from ui.marker_labels import level_positions, levels_that_fit, stack_levels


def _overlaps(xs, widths, levels, ppu):
    spans = sorted((levels[i], xs[i] * ppu, xs[i] * ppu + widths[i]) for i in range(len(xs)))
    return [(a, b) for a, b in itertools.pairwise(spans) if a[0] == b[0] and b[1] < a[2]]


def test_close_markers_get_their_own_levels_far_ones_share():
    # DOSE, dissociation, nausea, note within 1.5 min; another marker 30 min later
    xs = [0.0, 0.5, 1.0, 1.5, 30.0]
    widths = [50, 110, 160, 40, 60]
    levels = stack_levels(xs, widths, px_per_unit=20.0)
    assert levels[:4] == [0, 1, 2, 3]
    assert levels[4] == 0
    assert not _overlaps(xs, widths, levels, 20.0)


def test_labels_that_do_not_touch_stay_on_one_level():
    assert stack_levels([0, 10, 20], [50, 50, 50], px_per_unit=10.0) == [0, 0, 0]


def test_order_of_arrival_does_not_matter():
    assert stack_levels([5.0, 0.0], [100, 100], px_per_unit=10.0) == [1, 0]


def test_max_levels_reuses_the_level_free_first():
    levels = stack_levels([0, 0.1, 0.2], [100, 30, 100], px_per_unit=10.0, max_levels=2)
    assert levels == [0, 1, 1]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        stack_levels([0], [1, 2], 1.0)
    with pytest.raises(ValueError):
        stack_levels([0], [1], 0.0)


def test_positions_step_down_one_label_height_and_wrap():
    pos = level_positions([0, 1, 2], label_px=20, plot_px=200, top=0.95)
    assert pos == pytest.approx([0.95, 0.85, 0.75])
    wrapped = level_positions([0, 20], label_px=20, plot_px=100, top=0.95)
    assert all(0 < p <= 0.95 for p in wrapped)


def test_levels_that_fit_a_plot():
    assert levels_that_fit(20, 200, top=0.95) == 10  # 0.95, 0.85 .. 0.05
    assert levels_that_fit(20, 10) == 1 and levels_that_fit(20, 0) == 1
    levels = stack_levels([0, 0, 0, 0], [50] * 4, 1.0, max_levels=levels_that_fit(40, 100))
    assert max(levels) < levels_that_fit(40, 100)
