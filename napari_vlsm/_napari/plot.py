"""A live training curve drawn with QPainter, on one 0-1 scale a clinician can read:
validation Dice (the number that matters: overlap with the held-out corrections, 1 = perfect) and
the training loss RELATIVE TO ITS FIRST STEP (1 = where it started, lower = learning). The raw loss
(275 -> 6 with the Dice+BCE sum) means nothing outside the trainer; it is in the tooltip.

Why not pyqtgraph or matplotlib: neither is a napari dependency, and two polylines with axes do
not justify one. The widget only draws what it is given; the finetune panel feeds it.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOUR = QColor(255, 170, 60)  # orange
DICE_COLOUR = QColor(90, 200, 255)  # light blue
AXIS_COLOUR = QColor(150, 150, 150)


class CurvePlot(QWidget):
    """Loss and validation-Dice curves over training steps."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.clear()

    def clear(self, total: int = 0) -> None:
        self.loss: list[tuple[int, float]] = []
        self.dice: list[tuple[int, float]] = []
        self.total = int(total)
        self.update()

    def add_loss(self, step: int, loss: float, repaint: bool = True) -> None:
        """``repaint=False``: only record the point (the caller repaints when it chooses)."""
        if loss is not None and math.isfinite(loss):
            self.loss.append((int(step), float(loss)))
            first = self.loss[0][1]
            self.setToolTip(f"training loss: {first:.3g} at the start, {loss:.3g} now (step {step})")
            if repaint:
                self.update()

    def relative_loss(self) -> list[tuple[int, float]]:
        """The loss divided by its first value (so the curve starts at 1), clipped to 0-1."""
        if not self.loss:
            return []
        first = self.loss[0][1] or 1.0
        return [(step, min(1.0, max(0.0, value / first))) for step, value in self.loss]

    def add_dice(self, step: int, dice: float) -> None:
        if dice is not None and math.isfinite(dice):
            self.dice.append((int(step), float(dice)))
            self.update()

    # ------------------------------------------------------------------------------ drawing
    def _plot_rect(self) -> QRectF:
        fm = self.fontMetrics()
        left = fm.horizontalAdvance("1.0") + 8
        right = 8
        top, bottom = fm.height() + 4, fm.height() + 6
        return QRectF(left, top, max(10, self.width() - left - right), max(10, self.height() - top - bottom))

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self._plot_rect()
        fm = self.fontMetrics()
        p.setPen(QPen(AXIS_COLOUR, 1))
        p.drawRect(rect)
        x_max = max([self.total, 1] + [s for s, _ in self.loss] + [s for s, _ in self.dice])
        p.drawText(QPointF(2, rect.top() + fm.ascent()), "1.0")
        p.drawText(QPointF(2, rect.bottom()), "0")
        p.drawText(QPointF(rect.left(), rect.bottom() + fm.height() + 2), "step 0")
        end = f"{x_max}"
        p.drawText(QPointF(rect.right() - fm.horizontalAdvance(end), rect.bottom() + fm.height() + 2), end)
        # legend: Dice first, it is what the user judges the run by
        p.setPen(QPen(DICE_COLOUR, 2))
        dice_label = "validation Dice"
        if self.dice:
            dice_label += f" {self.dice[-1][1]:.2f}"
        p.drawText(QPointF(rect.left(), fm.ascent() + 1), dice_label)
        p.setPen(QPen(LOSS_COLOUR, 2))
        p.drawText(QPointF(rect.left() + fm.horizontalAdvance(dice_label + "   "), fm.ascent() + 1),
                   "loss (1 = start)")
        self._polyline(p, rect, self.relative_loss(), x_max, 0.0, 1.0, LOSS_COLOUR)
        self._polyline(p, rect, self.dice, x_max, 0.0, 1.0, DICE_COLOUR, dots=True)
        if not self.loss and not self.dice:
            p.setPen(QPen(AXIS_COLOUR, 1))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "training curve appears here")
        p.end()

    @staticmethod
    def _polyline(p, rect, points, x_max, lo, hi, colour, dots=False) -> None:
        if not points:
            return

        def xy(step, value):
            x = rect.left() + rect.width() * step / x_max
            y = rect.bottom() - rect.height() * (min(max(value, lo), hi) - lo) / (hi - lo)
            return QPointF(x, y)

        path = QPainterPath(xy(*points[0]))
        for step, value in points[1:]:
            path.lineTo(xy(step, value))
        p.setPen(QPen(colour, 2))
        p.drawPath(path)
        if dots or len(points) == 1:
            p.setBrush(colour)
            for step, value in points:
                p.drawEllipse(xy(step, value), 3, 3)
            p.setBrush(Qt.BrushStyle.NoBrush)
