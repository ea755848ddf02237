"""The pinned Qt stack survives a live screen's worth of redraws.

PySide6 6.12.0 on CPython 3.11 drops a reference to None on every wrapped call that returns None
and aborts the process within a few thousand pyqtgraph redraws (shared/reference/toolchain.md).
pyproject.toml pins below 6.12 on Python < 3.12; this soak test is what notices if the pin breaks.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("PySide6")
import pyqtgraph as pg
from PySide6 import QtWidgets

REDRAWS = 10_000


def test_ten_thousand_pleth_redraws_do_not_crash(qtbot):
    plot = pg.PlotWidget()
    plot.resize(800, 300)
    qtbot.addWidget(plot)
    plot.show()  # a hidden widget skips its paint: the crash is in the paint path
    qtbot.waitExposed(plot)
    curve = plot.plot(pen=pg.mkPen(width=1))
    x = np.arange(1250) / 125.0  # ten seconds of pleth at 125 Hz
    painted = 0
    original_paint = type(curve.curve).paint

    def counting_paint(item, *args):
        nonlocal painted
        painted += 1
        return original_paint(item, *args)

    type(curve.curve).paint = counting_paint
    try:
        for i in range(REDRAWS):
            curve.setData(x, np.sin(x * 7.0 + i * 0.05))
            QtWidgets.QApplication.processEvents()  # the scene paints on the event loop
    finally:
        type(curve.curve).paint = original_paint
    assert painted >= REDRAWS * 0.9, f"only {painted} of {REDRAWS} redraws painted the curve"


def test_twenty_thousand_none_returning_calls_do_not_crash(qtbot):
    label = QtWidgets.QLabel("SpO2 97")
    qtbot.addWidget(label)
    refs_before = sys.getrefcount(None)
    for _ in range(20_000):
        label.update()
    # On a broken binding None's count falls by one per call (until the process aborts).
    assert sys.getrefcount(None) >= refs_before - 1000
