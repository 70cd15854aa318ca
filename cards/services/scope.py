"""The reseller a staff user limited to one reseller may give cards to."""

from cards.exceptions import (
    CardPermissionDenied,
)
from subscribers.selectors import staff_reseller


def check_reseller_scope(*, actor, reseller) -> None:
    scoped = staff_reseller(actor)
    if scoped is not None and (reseller is None or reseller.pk != scoped.pk):
        raise CardPermissionDenied(f"You may only assign cards to {scoped.name}.", field="reseller")
