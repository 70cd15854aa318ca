"""The operator's Top-up Cards section in the Django admin.

- `cards.py`: the JeraSoft table and a card's page (history, audited edits and deletes).
- `views.py`: Generate, the Advanced Search POST (keeps PINs out of URLs), Mass Edit with
  preview, Delete all, PIN reveal, the CSV export.
- `display.py`: how a card, a count and a Mass Edit's outcome are shown; `downloads.py`: the
  one-time batch download and the streamed CSV.
- `changelist.py`: the changelist that searches through `CardFilter` and never counts a whole
  table.
- `batches.py`, `events.py`: batch pages with live figures, the read-only audit trail.
- `jobs.py`: background jobs with live progress; `job_redirects.py`: their old addresses.
"""

from . import jobs  # noqa: F401  (registers CardJobAdmin)
from .batches import CardBatchAdmin
from .cards import TopUpCardAdmin
from .events import CardEventAdmin
from .ledger import CardLedgerEntryAdmin  # noqa: F401  (replaces the wallets LedgerEntryAdmin)
from .printing import CardDeliveryAdmin, PrinterAdmin, PrintOrderAdmin

__all__ = [
    "CardBatchAdmin",
    "CardDeliveryAdmin",
    "CardEventAdmin",
    "PrintOrderAdmin",
    "PrinterAdmin",
    "TopUpCardAdmin",
]
