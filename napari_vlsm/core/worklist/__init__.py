"""The series worklist: a project's ordered items, their statuses, scores and leases.

One SQLite file in the project folder (``worklist.sqlite``, WAL mode: crash-safe, shared by the
dock, the CLI and the server). Modules: ``items`` (the record, statuses, orders), ``database``
(schema, transactions, clear errors), ``discover`` (files and folders -> items, headers only),
``ordering`` (what comes next), ``leases`` (several annotators), ``worklist`` (the class),
``reading`` (an item's pixels), ``scoring`` (how much the model doubts an item), ``export``
(the masks of done items). No torch at import. See docs/series.md.
"""

from .items import KINDS, ORDERS, STATUSES, AddReport, Item
from .reading import read_item
from .worklist import Worklist

__all__ = ["KINDS", "ORDERS", "STATUSES", "AddReport", "Item", "Worklist", "read_item"]
