"""The operator's Top-up Cards section in the Django admin.

- `cards.py`: the JeraSoft table, Advanced Search, Generate, Mass Edit, Delete all, PIN reveal.
- `changelist.py`: the changelist that searches through `CardFilter` and never counts a whole
  table.
- `batches.py`, `events.py`: batch pages with live figures, the read-only audit trail.
"""

from .batches import CardBatchAdmin
from .cards import TopUpCardAdmin
from .events import CardEventAdmin

__all__ = ["CardBatchAdmin", "CardEventAdmin", "TopUpCardAdmin"]
