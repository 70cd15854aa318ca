"""The cards app's models, one module per concern: `cards` (top-up cards, series, batches, the
card status), `events` (the audit record), `jobs` (background jobs), `printing` (printing houses,
print orders, deliveries); `formats` holds the value formats they constrain.

Django finds an app's models in its `models` module, and `from cards.models import TopUpCard`
is its convention: this is the one place that re-exports, and only the model classes. Every
other name (choices, formats, status rules) is imported from the module that defines it."""

from .cards import CardBatch, CardSeries, TopUpCard
from .events import CardEvent
from .jobs import CardJob, CardJobCard
from .printing import CardDelivery, Printer, PrintOrder, PrintOrderChunk

__all__ = [
    "CardBatch",
    "CardDelivery",
    "CardEvent",
    "CardJob",
    "CardJobCard",
    "CardSeries",
    "PrintOrder",
    "PrintOrderChunk",
    "Printer",
    "TopUpCard",
]
