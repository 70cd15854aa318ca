"""A balance's validity: start time (rules S1–S7) and end time (E1–E9), docs/balance-rules.md."""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..durations import RelativeTime
from ..exceptions import BadData
from ..models import Balance, BalanceEvent, BalanceEventKind, BalanceKind, Channel
from .checks import check_reason_text
from .intervals import ensure_locked_intervals, intervals_horizon
from .ledger import lock_with_ancestors

TimeValue = dt.datetime | RelativeTime
TIME_KINDS = (BalanceKind.SIMPLE, BalanceKind.PERIODIC)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _move(
    target: Balance,
    field: str,
    moment: dt.datetime,
    *,
    origin: Balance,
    relative: RelativeTime | None,
    actor,
    channel: str,
    reason: str,
    request_id: str,
) -> None:
    """Set `target`'s start or end (`field`) and record the change; `origin` is the balance the
    change was asked for, `target` one above it that moves with it (S6, E8) or `origin` itself."""
    changes = {field: [_iso(getattr(target, field)), _iso(moment)]}
    setattr(target, field, moment)
    target.save(update_fields=[field])
    if relative is not None:
        changes["relative"] = str(relative)
    if target is not origin:
        changes["propagated_from"] = origin.pk
    BalanceEvent.objects.create(
        balance=target,
        kind=BalanceEventKind(field),
        changes=changes,
        actor=actor,
        channel=channel,
        reason=reason,
        request_id=request_id,
    )


def _cover(moved: list[Balance], now: dt.datetime) -> None:
    """The periodic ones among the balances a validity change moved (all locked) get intervals
    for the time it added."""
    for target in moved:
        ensure_locked_intervals(target, until=intervals_horizon(now))


def is_aggregated(balance: Balance) -> bool:
    """Part of an aggregation hierarchy: it has a balance above it or balances below it."""
    return balance.parent_id is not None or balance.children.exists()


def check_start_time(balance: Balance, start_time: TimeValue, *, now: dt.datetime) -> dt.datetime:
    """Rules S1, S3, S4, S5, S7 for moving `balance`'s start; returns the new start."""
    template = balance.template
    if template.kind not in TIME_KINDS:
        raise BadData("Only simple and periodic balances can change their start time.", rule="S1")
    if template.is_private:
        raise BadData("A private balance's start time cannot change.", rule="S7")
    if not isinstance(start_time, dt.datetime):
        raise BadData("StartTime must be an absolute date and time.", rule="S4")
    if start_time >= balance.start_time:
        raise BadData("The start time can only move earlier than the configured start.", rule="S3")
    expired = balance.end_time is not None and balance.end_time <= now
    if expired and template.kind == BalanceKind.PERIODIC:
        raise BadData("An expired periodic balance cannot change its start time.", rule="S5")
    return start_time


@transaction.atomic
def balance_change_start(
    *,
    balance_id: int,
    start_time: TimeValue,
    actor=None,
    channel: str = Channel.SYSTEM,
    reason: str = "",
    request_id: str = "",
) -> list[Balance]:
    """Move a balance's start earlier (S1–S7). Returns every balance that changed.

    S2: a periodic balance moves as a whole; its intervals are kept as they are, and the time
    the move adds gets intervals of the template's period.
    S6: each aggregated balance above it whose start is later moves to the new start too.
    """
    now = timezone.now()
    balance, *ancestors = lock_with_ancestors(balance_id)
    new_start = check_start_time(balance, start_time, now=now)
    changed = [balance, *(a for a in ancestors if a.start_time > new_start)]
    for target in changed:
        _move(
            target,
            "start_time",
            new_start,
            origin=balance,
            relative=None,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    _cover(changed, now)
    return changed


def check_end_time(
    balance: Balance, end_time: TimeValue, *, now: dt.datetime, via_topup: bool, aggregated: bool
) -> dt.datetime:
    """Rules E1, E2, E4–E7, E9 for a new end of `balance`; returns the new end."""
    template = balance.template
    if template.kind not in TIME_KINDS:
        raise BadData("Only simple and periodic balances can change their end time.", rule="E2")
    if not template.end_adjust_allowed:
        raise BadData("This balance's template does not allow end time adjustment.", rule="E1")
    if template.is_private and not via_topup:
        raise BadData("A private balance's end time can change only through a top-up.", rule="E9")
    relative = isinstance(end_time, RelativeTime)
    if relative:
        if balance.end_time is None:
            raise BadData(
                "The balance has no end time to count from: give an absolute EndTime.", rule="E7"
            )
        try:
            new_end = end_time.after(balance.end_time)
        except OverflowError:
            raise BadData("EndTime is out of range.", rule="E7") from None
    else:
        new_end = end_time
    if new_end <= balance.start_time:
        raise BadData("The end time must be later than the balance's start time.", rule="E4")
    if new_end <= now:
        if relative:
            raise BadData("A relative EndTime cannot set the end in the past.", rule="E7")
        if aggregated:
            raise BadData(
                "An aggregated balance's end time can be extended only into the future.",
                rule="E6",
            )
        if not settings.ALLOW_END_TIME_IN_PAST:
            raise BadData("The end time must be later than now.", rule="E4")
    return new_end


@transaction.atomic
def balance_change_end(
    *,
    balance_id: int,
    end_time: TimeValue,
    via_topup: bool = False,
    actor=None,
    channel: str = Channel.SYSTEM,
    reason: str = "",
    request_id: str = "",
) -> list[Balance]:
    """Change a balance's end (E1–E9). Returns every balance that changed.

    E3: a periodic balance changes as a whole; its intervals are kept as they are, and the time
    an extension adds gets intervals of the template's period as it comes (INTERVALS_AHEAD).
    E8: each aggregated balance above it whose end is earlier than the new end is extended to it.
    """
    now = timezone.now()
    balance, *ancestors = lock_with_ancestors(balance_id)
    new_end = check_end_time(
        balance,
        end_time,
        now=now,
        via_topup=via_topup,
        aggregated=bool(ancestors) or is_aggregated(balance),
    )
    targets = [balance]
    if balance.end_time is not None and new_end > balance.end_time:  # extending (E8)
        targets += [a for a in ancestors if a.end_time is not None and a.end_time < new_end]
    for target in targets:
        _move(
            target,
            "end_time",
            new_end,
            origin=balance,
            relative=end_time if isinstance(end_time, RelativeTime) else None,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    _cover(targets, now)
    return targets


@transaction.atomic
def balance_change_validity(
    *,
    balance_id: int,
    start_time: TimeValue | None = None,
    end_time: TimeValue | None = None,
    actor=None,
    channel: str = Channel.SYSTEM,
    reason: str = "",
    request_id: str = "",
) -> list[Balance]:
    """Change the start and/or the end of a balance in one transaction (S1–S7, E1–E8)."""
    check_reason_text(reason)
    changed: list[Balance] = []
    if start_time is not None:
        changed += balance_change_start(
            balance_id=balance_id,
            start_time=start_time,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    if end_time is not None:
        changed += balance_change_end(
            balance_id=balance_id,
            end_time=end_time,
            actor=actor,
            channel=channel,
            reason=reason,
            request_id=request_id,
        )
    return changed
