"""Mass Edit of a large selection: the service against one plain UPDATE of the same rows.

`cards_mass_update` (expiry + block, with one audit event per card and field) keeps the ids of
the rows it locked in a temporary table, so a batch committed meanwhile is not touched
(tests/reliability/test_concurrency_mass_edit.py). This prints, for the same selection in the
same run: the service, the service without the table (the search re-run in each statement, the
cost the table is weighed against), and the baseline, one
`UPDATE … SET expires_at, blocked WHERE series = …` with no audit. Every run is rolled back, so
each starts from the same table.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/mass_edit.py --cards 200000

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


def timed(work, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with transaction.atomic():
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
            transaction.set_rollback(True)
    return times


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
    results = {}
    for name, work in (("baseline UPDATE", baseline), ("service", service), ("re-run", service)):
        cards.services.mass_edit._lock_cards = (
            rerun_search_lock_cards if name == "re-run" else current
        )
        results[name] = statistics.median(timed(work, args.runs))
    cards.services.mass_edit._lock_cards = current
    base = results["baseline UPDATE"]
    print(f"Mass Edit of {selected:,} cards (expiry + block), median of {args.runs} runs:")
    for name, seconds in results.items():
        print(f"  {name:<16} {seconds:7.2f} s   {seconds / base:5.1f}x baseline")
    print(f"  service / re-run: {results['service'] / results['re-run']:.2f}")


if __name__ == "__main__":
    main()
