"""Monthly partitions of the card audit table, made ahead of time (docs/scaling.md, "Card
events"). Only on PostgreSQL; SQLite keeps one plain table."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from cards import sql
from wallets.sql import advisory_lock

# The worker's task runs daily; three months ahead leave a quarter for a stopped worker to be
# noticed before any event lands in the DEFAULT partition (where it is still kept).
MONTHS_AHEAD = 3


@dataclass(frozen=True)
class PartitionsResult:
    made: tuple[str, ...]
    moved: int
    """Events moved out of the DEFAULT partition into the month made for them."""


def month_start(at: dt.datetime) -> dt.datetime:
    return dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC)


def next_month(start: dt.datetime) -> dt.datetime:
    return month_start(start + dt.timedelta(days=32))


def partition_name(start: dt.datetime) -> str:
    return f"{sql.CARDEVENT_TABLE}_{start:%Y_%m}"


def cardevent_partitions_extend(
    *, months_ahead: int = MONTHS_AHEAD, now: dt.datetime | None = None
) -> PartitionsResult:
    """Make a partition for every month from the end of the last one up to `months_ahead` months
    after the current one, each in its own transaction. Safe to run at any time and in parallel:
    runs take turns, and a month made already is not made again."""
    if connection.vendor != "postgresql":
        return PartitionsResult(made=(), moved=0)
    until = next_month(month_start(now or timezone.now()))
    for _ in range(months_ahead):
        until = next_month(until)
    made, moved = [], 0
    while True:
        with transaction.atomic():
            advisory_lock("cards.cardevent_partitions")
            start = sql.cardevent_partitioned_until()
            if start is None or start >= until:
                return PartitionsResult(made=tuple(made), moved=moved)
            name = partition_name(start)
            moved += sql.cardevent_partition_add(name=name, start=start, end=next_month(start))
            made.append(name)
