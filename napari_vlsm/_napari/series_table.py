"""The Series section's table: one row per worklist item (name, status, score, corrections), sortable
by any column, the item on screen selected. Double-click opens a row (``opened`` carries its id)."""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("Name", "Status", "Score", "Corr.")
ID_ROLE = Qt.ItemDataRole.UserRole


class _Cell(QTableWidgetItem):
    """Sorts by its own key (numbers as numbers, unscored last), shows its text."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key
        self.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)

    def __lt__(self, other) -> bool:
        return self.key < getattr(other, "key", self.key)


class SeriesTable(QTableWidget):
    opened = Signal(int)  # an item id, double-clicked

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setMinimumHeight(140)
        self.setSortingEnabled(True)
        self.sortItems(0, Qt.SortOrder.AscendingOrder)  # by name, A first, until the user clicks a header
        self.cellDoubleClicked.connect(lambda row, _col: self.opened.emit(self.item_id(row)))

    def item_id(self, row: int) -> int:
        return int(self.item(row, 0).data(ID_ROLE))

    def show_items(self, items, current: int | None) -> None:
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)  # rows are filled unsorted, then sorted once
        self.setRowCount(len(items))
        for row, item in enumerate(items):
            score = "" if item.score is None else f"{item.score:.3f}"
            cells = (_Cell(item.name, (item.name.lower(), item.id)), _Cell(item.status, (item.status, item.id)),
                     _Cell(score, (item.score is None, -(item.score or 0.0), item.id)),
                     _Cell(str(item.corrections), (item.corrections, item.id)))
            cells[0].setData(ID_ROLE, item.id)
            tip = f"{item.path}\n{item.reason}" if item.reason else str(item.path)
            for col, cell in enumerate(cells):
                cell.setToolTip(tip)
                self.setItem(row, col, cell)
        self.setSortingEnabled(sorting)
        self.select(current)

    def select(self, item_id: int | None) -> None:
        self.clearSelection()
        for row in range(self.rowCount()):
            if item_id is not None and self.item_id(row) == item_id:
                self.selectRow(row)
                self.scrollToItem(self.item(row, 0))
                return

    def row_of(self, item_id: int) -> int | None:
        return next((r for r in range(self.rowCount()) if self.item_id(r) == item_id), None)
