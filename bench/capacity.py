"""Bytes per row of every table, measured in a filled database: the base of docs/scaling.md.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench_10m
    .venv/bin/python bench/reports.py --cards 10000000 --entries 10000000 --edits 20000000
    .venv/bin/python bench/capacity.py --balance-events

For each table (a partitioned table counts all its partitions): rows, heap, index and TOAST
bytes, and the total per row (`pg_total_relation_size / count`, indexes included). For the card
events it also gives the width of a row per kind (`pg_column_size`), since the kinds differ in
what they carry. `--balance-events` first writes the balance audit rows the services write with
each ledger entry (one per entry, `{"amount": [old, new]}`), which bench/reports.py does not.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from bench.bulk import without_indexes  # noqa: E402

SIZES = """
SELECT coalesce(sum(pg_relation_size(t.relid)), 0),
       coalesce(sum(pg_indexes_size(t.relid)), 0),
       coalesce(sum(pg_total_relation_size(t.relid) - pg_relation_size(t.relid)
                    - pg_indexes_size(t.relid)), 0)
FROM (SELECT relid FROM pg_partition_tree(%s::regclass) UNION SELECT %s::regclass) t
"""

TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def fill_balance_events() -> None:
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("TRUNCATE wallets_balanceevent RESTART IDENTITY")
    with connection.cursor() as cur, without_indexes(cur, ["wallets_balanceevent"]):
        cur.execute(
            """
            INSERT INTO wallets_balanceevent (balance_id, kind, channel, actor_id,
                ledger_entry_id, changes, reason, request_id, created_at)
            SELECT balance_id,
                   CASE kind WHEN 'redemption' THEN 'redemption' WHEN 'topup' THEN 'topup'
                        WHEN 'reversal' THEN 'reversal' ELSE 'adjustment' END,
                   channel, actor_id, id,
                   jsonb_build_object('amount', jsonb_build_array(
                       (100 + id % 997)::numeric(30, 6)::text,
                       (100 + id % 997 + amount)::numeric(30, 6)::text)),
                   reason, request_id, created_at
            FROM wallets_ledgerentry
            """
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE wallets_balanceevent")
    print(f"wrote the balance events in {time.perf_counter() - started:.1f} s")


def fill_failed(failed: int) -> None:
    """Failed redemptions as `card_redeem_failed_event` writes them (no card found: the common
    case), spread over the last 30 days, from 1 in 7 addresses of a /16, half over REST."""
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("DELETE FROM cards_cardevent WHERE kind = 'redeem_failed'")
        cur.execute("SELECT min(id), max(id) FROM subscribers_subscriber")
        low, high = cur.fetchone()
    with connection.cursor() as cur, without_indexes(cur, ["cards_cardevent"]):
        cur.execute(
            """
            INSERT INTO cards_cardevent (kind, serial, channel, ip_address, changes, created_at,
                subscriber_id)
            SELECT 'redeem_failed', '', CASE WHEN j %% 2 = 0 THEN 'panel' ELSE 'rest' END,
                   ('10.20.0.0'::inet + (j * 7) %% 65536),
                   '{"reason": "No card has this code."}'::jsonb,
                   now() - (j %% 2592000) * interval '1 second',
                   %s + j %% (%s - %s + 1)
            FROM generate_series(1, %s) j
            """,
            [low, high, low, failed],
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE cards_cardevent")
    print(f"wrote {failed:,} failed redemptions in {time.perf_counter() - started:.1f} s")


def measure() -> None:
    with connection.cursor() as cur:
        cur.execute(TABLES)
        tables = [name for (name,) in cur.fetchall()]
        print(
            f"{'table':<34} {'rows':>12} {'heap MB':>9} {'index MB':>9} {'toast MB':>9}"
            f" {'bytes/row':>10} {'heap/row':>9}"
        )
        for table in tables:
            cur.execute(f'SELECT count(*) FROM "{table}"')
            rows = cur.fetchone()[0]
            cur.execute(SIZES, [table, table])
            heap, index, toast = cur.fetchone()
            if rows < 1000:
                continue
            total = heap + index + toast
            print(
                f"{table:<34} {rows:>12,} {heap / 2**20:>9.1f} {index / 2**20:>9.1f} "
                f"{toast / 2**20:>9.1f} {total / rows:>10.0f} {heap / rows:>9.0f}"
            )
        cur.execute(
            "SELECT kind, count(*), avg(pg_column_size(e.*))::int FROM cards_cardevent e "
            "GROUP BY kind ORDER BY 2 DESC"
        )
        print("\ncard events by kind: rows, average row width in bytes (pg_column_size)")
        for kind, rows, width in cur.fetchall():
            print(f"  {kind:<14} {rows:>12,} {width:>5}")
    print(f"\nload average {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--balance-events", action="store_true")
    parser.add_argument("--failed", type=int, default=0, help="failed redemptions to write")
    args = parser.parse_args()
    if connection.vendor != "postgresql" or "bench" not in connection.settings_dict["NAME"]:
        sys.exit("Run on a PostgreSQL database whose name contains 'bench'.")
    if args.balance_events:
        fill_balance_events()
    if args.failed:
        fill_failed(args.failed)
    measure()


if __name__ == "__main__":
    main()
