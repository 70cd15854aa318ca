"""Reads for the client panel: what a subscriber may see of their own balances and history."""

from django.db.models import QuerySet

from subscribers.models import Subscriber
from wallets.models import Balance, LedgerEntry

RECENT_ENTRIES = 10


def subscriber_balances(subscriber: Subscriber) -> QuerySet[Balance]:
    """The balances of the subscriber's own wallets, main balance first."""
    return (
        Balance.objects.filter(wallet__subscription__subscriber=subscriber)
        .select_related("template")
        .order_by("-is_main", "wallet_id", "resource_id")
    )


def subscriber_recent_entries(
    subscriber: Subscriber, *, limit: int = RECENT_ENTRIES
) -> QuerySet[LedgerEntry]:
    """The latest ledger entries of the subscriber's own balances, newest first."""
    return (
        LedgerEntry.objects.filter(balance__wallet__subscription__subscriber=subscriber)
        .select_related("balance__template")
        .order_by("-created_at", "-id")[:limit]
    )
