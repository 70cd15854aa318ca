"""Mass Edit of a large selection: the service against one plain UPDATE of the same rows.

`cards_mass_update` (expiry + block, with one audit event per card and field) keeps the ids of
the rows it locked in a temporary table, so a batch committed meanwhile is not touched
(tests/reliability/test_concurrency_mass_edit.py). This prints, for the same selection in the
same run: the service, the service without the table (the search re-run in each statement, the
cost the table is weighed against), and the baseline, one
`UPDATE … SET expires_at, blocked WHERE series = …` with no audit. Every run is rolled back and
followed by a VACUUM of the cards and events (the rolled-back row versions are dead rows), so
each run, whichever side, starts from the same table. Rounds interleave the sides, the order
rotating each round; each figure is printed with the load average.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/mass_edit.py --cards 200000 [--runs 3]
    .venv/bin/python bench/mass_edit.py --cards 2000 --runs 1     # smoke run

The database's cards and events are replaced: use a bench database.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

import cards.services.mass_edit  # noqa: E402
from cards.models import TopUpCard  # noqa: E402

LOAD_SQL = """
INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest, pin_encrypted,
    pin_length, pin_last4, expires_at, blocked, created_at)
SELECT ((i %% 2) + 1)::text, i / 2 + 1, 10, 'USD', sha256(('d' || i)::bytea),
       sha256(('e' || i)::bytea), 12, lpad((i %% 10000)::text, 4, '0'),
       now() + interval '30 days', false, now()
FROM generate_series(0, %(n)s - 1) AS i
"""


def rerun_search_lock_cards(cards_qs):
    """`_lock_cards` without the table: lock, count, and let each statement re-run the search."""
    sql, params = cards_qs.order_by("pk").values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql} FOR UPDATE) AS locked", params)  # noqa: S608
        return cards_qs, cursor.fetchone()[0]


def vacuum() -> None:
    """Remove the dead row versions a rolled-back run leaves (outside any transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE cards_topupcard")
        cursor.execute("VACUUM ANALYZE cards_cardevent")


def timed(work) -> float:
    vacuum()
    with transaction.atomic():
        started = time.perf_counter()
        work()
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL (DATABASE_URL).")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE cards_cardevent, cards_topupcard RESTART IDENTITY CASCADE")
        cursor.execute(LOAD_SQL, {"n": args.cards})
        cursor.execute("VACUUM ANALYZE cards_topupcard")
    selected = args.cards // 2  # series "1"
    new_expiry = timezone.now() + dt.timedelta(days=200)

    def service():
        result = cards.services.mass_edit.cards_mass_update(
            cards=TopUpCard.objects.filter(series="1"),
            expires_at=new_expiry,
            blocked=True,
            actor=None,
        )
        assert result.changed == {"expires_at": selected, "blocked": selected}, result

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE cards_topupcard SET expires_at = %s, blocked = true WHERE series = '1'",
                [new_expiry],
            )

    current = cards.services.mass_edit._lock_cards
    sides = [("baseline UPDATE", baseline), ("service", service), ("re-run", service)]
    results: dict[str, list[float]] = {name: [] for name, _ in sides}
    print(f"Mass Edit of {selected:,} cards (expiry + block), {args.runs} interleaved rounds:")
    for round_number in range(args.runs):
        shift = round_number % len(sides)
        order = sides[shift:] + sides[:shift]
        for name, work in order:
            cards.services.mass_edit._lock_cards = (
                rerun_search_lock_cards if name == "re-run" else current
            )
            seconds = timed(work)
            results[name].append(seconds)
            print(f"  round {round_number + 1} {name:<16} {seconds:7.2f} s   {load_average()}")
        cards.services.mass_edit._lock_cards = current
    base = statistics.median(results["baseline UPDATE"])
    print("medians:")
    for name, times in results.items():
        median = statistics.median(times)
        print(
            f"  {name:<16} {median:7.2f} s ({min(times):.2f} to {max(times):.2f})"
            f"   {median / base:5.1f}x baseline"
        )
    ratios = [
        service / rerun
        for service, rerun in zip(results["service"], results["re-run"], strict=True)
    ]
    print(
        f"  service / re-run: median {statistics.median(ratios):.2f}"
        f" ({min(ratios):.2f} to {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
