"""How fast each report page answers with 1M cards, 200k ledger entries, 50k deleted, 100k edits.

    su postgres -c "createdb -O topup topup_bench_d"
    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench_d
    .venv/bin/python bench/reports.py

The data is generated inside PostgreSQL with `generate_series` (INSERT ... SELECT, no ORM, no
Python loop over rows) and kept between runs; `--reload` rebuilds it. The script refuses a database
whose name does not contain "bench", because loading TRUNCATEs the cards and wallets tables.

The deleted cards are audit events only (`kind = "deleted"`, as Mass Edit's Delete all writes them),
in five runs of 10,000 at 400, 200, 100, 40 and 5 days ago: liability reads the deletions since its
date, breakage those since its period's start. `--deleted` changes their number; only the events
are rewritten when it differs from what is loaded.

The Mass Edit changes are the audit events `cards_mass_update` writes (`edited` with the
expiry's or the reseller's old and new value, `blocked` / `unblocked`): 200 runs, one every two
days over the last 400, each changing one field (in turn block, expiry, reseller, unblock) of a
box of 500 consecutive cards that existed and were unredeemed then. Liability reads the changes
since its date: 95,000 for "a year ago". `--edits` changes their number.

`--existing` measures a database already filled (e.g. the 10M one, whose fill took an hour) as
it is: it never loads, truncates or rewrites anything but the reports' summaries, whatever the
counts. `--rebuild-summary` times building every summary again (the movements' and the
Redemptions and Balances reports' daily ones, with the peak RSS); otherwise they are extended as
the worker's hourly task does. `--compare-live` also measures the Redemptions and Balances pages
computed wholly live (the daily summaries not read), in alternating rounds with the summaries.

Each report page is requested through Django's test client (the whole admin view: permission,
form, aggregate queries, chart, template) `--repeat` times after one warm-up; the median is
printed beside the median of `SELECT count(*) FROM cards_topupcard` measured in the same run.
Target: every page ≤ 500 ms median.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.bulk import without_indexes  # noqa: E402
from reports.forms import end_of_previous_month  # noqa: E402

RESELLERS = 20
SUBSCRIBERS = 5_000
SERIES = 50
# Of the ledger entries, 3/4 are card redemptions (one per redeemed card), the rest top-ups,
# adjustments and reversals.
REDEEMED_SHARE = 0.75
# Filled without their indexes and keys, built again after (bench/bulk.py): minutes at 10M.
BULK_TABLES = ["cards_topupcard", "cards_cardevent", "wallets_ledgerentry"]

TABLES = [
    "cards_cardevent",
    "cards_topupcard",
    "cards_cardbatch",
    "cards_cardseries",
    "wallets_ledgerentry",
    "wallets_balanceinterval",
    "wallets_balance",
    "wallets_balancetemplate",
    "wallets_wallet",
    "subscribers_accessnumber",
    "subscribers_subscription",
    "subscribers_staffreseller",
    "subscribers_subscriber",
    "subscribers_reseller",
]


BALANCES_FROM_LEDGER = """
UPDATE wallets_balance b SET amount = coalesce(t.total, 0)
FROM wallets_balance a
LEFT JOIN (SELECT balance_id, sum(amount) AS total FROM wallets_ledgerentry GROUP BY balance_id) t
    ON t.balance_id = a.id
WHERE b.id = a.id AND b.amount IS DISTINCT FROM coalesce(t.total, 0)
"""


def load(cards: int, entries: int) -> None:
    redeemed = int(entries * REDEEMED_SHARE)
    started = time.perf_counter()
    with connection.cursor() as cur, without_indexes(cur, BULK_TABLES):
        cur.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        cur.execute(
            "INSERT INTO subscribers_reseller (id, name, created_at) "
            "SELECT r, 'Reseller ' || r, now() FROM generate_series(1, %s) r",
            [RESELLERS],
        )
        cur.execute(
            "INSERT INTO subscribers_subscriber (id, name, reseller_id, created_at) "
            "SELECT s, 'Subscriber ' || s, 1 + s %% %s, now() FROM generate_series(1, %s) s",
            [RESELLERS, SUBSCRIBERS],
        )
        cur.execute(
            "INSERT INTO subscribers_subscription (id, subscriber_id, external_id, created_at) "
            "SELECT s, s, 'sub-' || s, now() FROM generate_series(1, %s) s",
            [SUBSCRIBERS],
        )
        cur.execute(
            "INSERT INTO wallets_wallet (id, subscription_id, created_at) "
            "SELECT s, s, now() FROM generate_series(1, %s) s",
            [SUBSCRIBERS],
        )
        cur.execute(
            "INSERT INTO wallets_balancetemplate "
            "(id, name, kind, currency, precision, end_adjust_allowed, is_private) VALUES "
            "(1, 'Main USD', 'simple', 'USD', 2, true, false), "
            "(2, 'Main EUR', 'simple', 'EUR', 2, true, false), "
            "(3, 'Data MB', 'simple', 'MB', 0, true, false)"
        )
        # Balance s is the main balance of subscriber s (USD for 4 in 5, else EUR); data balances
        # follow with ids above SUBSCRIBERS.
        cur.execute(
            "INSERT INTO wallets_balance (id, wallet_id, resource_id, template_id, amount, "
            "start_time, is_main, created_at) "
            "SELECT s, s, 1, CASE WHEN s %% 5 = 0 THEN 2 ELSE 1 END, (s %% 97) * 1.25, "
            "now() - interval '3 years', true, now() FROM generate_series(1, %s) s "
            "UNION ALL "
            "SELECT %s + s, s, 2, 3, (s %% 13) * 512, now() - interval '3 years', false, now() "
            "FROM generate_series(1, %s) s",
            [SUBSCRIBERS, SUBSCRIBERS, SUBSCRIBERS],
        )
        # Cards: created over two years (ending 30 days ago), valid 30 to 210 days, 1 in 97
        # blocked; the redeemed ones were redeemed within 29 days of creation by subscriber
        # 1 + k % SUBSCRIBERS, through the panel or the REST API, 1 in 100 later reversed.
        cur.execute(
            """
            CREATE TEMP TABLE bench_cards AS
            SELECT i::bigint AS i,
                   now() - interval '30 days' - (i %% 700) * interval '1 day'
                         - (i %% 86400) * interval '1 second' AS created_at,
                   CASE WHEN (i + 1) * %(redeemed)s / %(cards)s <> i * %(redeemed)s / %(cards)s
                        THEN i * %(redeemed)s / %(cards)s + 1 END AS k
            FROM generate_series(0::bigint, %(cards)s - 1) i
            """,
            {"redeemed": redeemed, "cards": cards},
        )
        cur.execute(
            """
            INSERT INTO wallets_ledgerentry (id, balance_id, amount, kind, channel, voucher,
                reason, request_id, created_at)
            SELECT k, 1 + k %% %(subs)s, (ARRAY[5, 10, 20, 50])[1 + i %% 4], 'redemption',
                   CASE WHEN k %% 2 = 0 THEN 'panel' ELSE 'rest' END,
                   (100 + i %% %(series)s)::text || '-' || lpad(i::text, 9, '0'), '', '',
                   created_at + (i %% 29) * interval '1 day'
            FROM bench_cards WHERE k IS NOT NULL
            """,
            {"subs": SUBSCRIBERS, "series": SERIES},
        )
        cur.execute(
            """
            INSERT INTO wallets_ledgerentry (id, balance_id, amount, kind, channel, voucher,
                reason, request_id, created_at)
            SELECT %(first)s + j, 1 + j %% %(subs)s,
                   CASE WHEN j %% 4 = 3 THEN -1.5 ELSE 2.5 + j %% 40 END,
                   (ARRAY['topup', 'topup', 'adjustment', 'adjustment'])[1 + j %% 4],
                   CASE WHEN j %% 4 < 2 THEN 'rest' ELSE 'admin' END, '', '', '',
                   now() - (j %% 730) * interval '1 day' - (j %% 3600) * interval '1 second'
            FROM generate_series(1, %(others)s) j
            """,
            {"first": redeemed, "subs": SUBSCRIBERS, "others": entries - redeemed},
        )
        cur.execute(
            """
            INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest,
                pin_encrypted, pin_length, pin_last4, reseller_id, expires_at, blocked,
                activated_at, activated_by_id, reversed_at, ledger_entry_id, created_at)
            SELECT (100 + i %% %(series)s)::text, i + 1, (ARRAY[5, 10, 20, 50])[1 + i %% 4],
                   CASE WHEN i %% 5 = 0 THEN 'EUR' ELSE 'USD' END,
                   decode(md5(i::text), 'hex'), '\\x00'::bytea, 12,
                   lpad((i %% 10000)::text, 4, '0'),
                   CASE WHEN i %% 50 = 0 THEN NULL ELSE 1 + i %% %(resellers)s END,
                   created_at + (30 + (i %% 7) * 30) * interval '1 day',
                   k IS NULL AND i %% 97 = 0 OR COALESCE(k %% 100 = 0, false),
                   CASE WHEN k IS NOT NULL THEN created_at + (i %% 29) * interval '1 day' END,
                   CASE WHEN k IS NOT NULL THEN 1 + k %% %(subs)s END,
                   CASE WHEN k %% 100 = 0
                        THEN created_at + (i %% 29 + 1) * interval '1 day' END,
                   k, created_at
            FROM bench_cards
            """,
            {"series": SERIES, "resellers": RESELLERS, "subs": SUBSCRIBERS},
        )
        cur.execute("DROP TABLE bench_cards")
        # Each balance holds what its ledger entries add up to, as the product's writes keep it
        # (check_ledger): the figures above gave balances and entries independent amounts, and
        # every bench run on this data ended with check_ledger reporting the fill, not the run.
        cur.execute(BALANCES_FROM_LEDGER)
        # Audit events as the services write them, so the cards' audit table has a realistic size:
        # one per redemption and reversal, and block events for the blocked cards (half of them
        # blocked, unblocked, blocked again).
        cur.execute(
            """
            INSERT INTO cards_cardevent (kind, serial, channel, changes, created_at, card_id)
            SELECT 'redeemed', series || '-' || lpad(number::text, 9, '0'), '', '{}'::jsonb,
                   activated_at, id
            FROM cards_topupcard WHERE activated_at IS NOT NULL
            UNION ALL
            SELECT 'reversed', series || '-' || lpad(number::text, 9, '0'), '', '{}'::jsonb,
                   reversed_at, id
            FROM cards_topupcard WHERE reversed_at IS NOT NULL
            UNION ALL
            SELECT 'blocked', series || '-' || lpad(number::text, 9, '0'), '', '{}'::jsonb,
                   created_at + interval '2 days', id
            FROM cards_topupcard WHERE blocked AND activated_at IS NULL
            UNION ALL
            SELECT kind, series || '-' || lpad(number::text, 9, '0'), '', '{}'::jsonb,
                   created_at + delay, id
            FROM cards_topupcard,
                 (VALUES ('blocked', interval '1 day'), ('unblocked', interval '36 hours'))
                 AS e (kind, delay)
            WHERE blocked AND activated_at IS NULL AND number % 2 = 0
            """
        )
        for table in (
            "subscribers_reseller",
            "subscribers_subscriber",
            "subscribers_subscription",
            "wallets_wallet",
            "wallets_balancetemplate",
            "wallets_balance",
            "wallets_ledgerentry",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(
        f"loaded {cards:,} cards and {entries:,} ledger entries in "
        f"{time.perf_counter() - started:.1f} s (load average {os.getloadavg()[0]:.1f})"
    )


DELETION_RUNS_DAYS_AGO = (400, 200, 100, 40, 5)


def load_deleted(deleted: int, cards: int) -> None:
    """Deletion events for `deleted` cards that are no longer in the cards table (numbers above
    the loaded cards), with the `changes` Delete all writes: created 30 to 329 days before their
    deletion, valid 30 to 210 days (so some expired before they were deleted), 1 in 97 blocked."""
    runs = len(DELETION_RUNS_DAYS_AGO)
    with connection.cursor() as cur:
        started = time.perf_counter()
        cur.execute("DELETE FROM cards_cardevent WHERE kind = 'deleted'")
        cur.execute(
            """
            INSERT INTO cards_cardevent (kind, serial, channel, changes, created_at)
            SELECT 'deleted', series || '-' || lpad(number::text, 9, '0'), 'admin',
                   jsonb_build_object(
                       'amount', amount::text, 'currency', currency, 'reseller', reseller,
                       'series', series, 'created_at', created_at, 'expires_at', expires_at,
                       'blocked', blocked),
                   deleted_at
            FROM (
                SELECT j, (100 + j %% %(series)s)::text AS series, %(cards)s + j AS number,
                       (ARRAY[5, 10, 20, 50])[1 + j %% 4]::numeric(14, 2) AS amount,
                       CASE WHEN j %% 5 = 0 THEN 'EUR' ELSE 'USD' END AS currency,
                       CASE WHEN j %% 50 = 0 THEN NULL ELSE 1 + j %% %(resellers)s END AS reseller,
                       j %% 97 = 0 AS blocked, deleted_at,
                       deleted_at - (30 + j %% 300) * interval '1 day' AS created_at,
                       deleted_at - (30 + j %% 300) * interval '1 day'
                           + (30 + (j %% 7) * 30) * interval '1 day' AS expires_at
                FROM generate_series(1, %(deleted)s) j,
                     LATERAL (SELECT date_trunc('minute', now())
                                     - (%(runs)s::int[])[1 + j %% %(n_runs)s] * interval '1 day'
                                 AS deleted_at) d
            ) AS gone
            """,
            {
                "series": SERIES,
                "cards": cards,
                "resellers": RESELLERS,
                "deleted": deleted,
                "runs": list(DELETION_RUNS_DAYS_AGO),
                "n_runs": runs,
            },
        )
        cur.execute("ANALYZE cards_cardevent")
        print(f"loaded {deleted:,} deletion events in {time.perf_counter() - started:.1f} s")


EDIT_RUNS = 200
EDIT_DAYS = 400


def load_edits(edits: int) -> None:
    """Mass Edit changes as `cards_mass_update` writes them: `EDIT_RUNS` runs spread evenly over
    the last `EDIT_DAYS` days, each changing one field of a box of consecutive cards that existed
    and were not redeemed at the time: in turn block, expiry (+90 days), reseller (to the next
    one), unblock. Only the audit events are written (the cards keep their state): the reports
    read the events after their date, which is what costs."""
    per_run = max(1, edits // EDIT_RUNS)
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "DELETE FROM cards_cardevent WHERE channel = 'admin' "
            "AND kind IN ('edited', 'blocked', 'unblocked')"
        )
    with connection.cursor() as cur, without_indexes(cur, ["cards_cardevent"]):
        cur.execute("SELECT max(id) FROM cards_topupcard")
        top = cur.fetchone()[0] or 0
        cur.execute(
            """
            INSERT INTO cards_cardevent (kind, card_id, serial, batch_id, channel, changes,
                created_at)
            SELECT (ARRAY['blocked', 'edited', 'edited', 'unblocked'])[1 + r %% 4], c.id,
                   c.series || '-' || lpad(c.number::text, 9, '0'), c.batch_id, 'admin',
                   CASE r %% 4
                       WHEN 0 THEN '{"field": "blocked", "old": false, "new": true}'::jsonb
                       WHEN 1 THEN jsonb_build_object('field', 'expires_at',
                           'old', c.expires_at, 'new', c.expires_at + interval '90 days')
                       WHEN 2 THEN jsonb_build_object('field', 'reseller',
                           'old', c.reseller_id, 'new', 1 + coalesce(c.reseller_id, 0) %% %(res)s,
                           'new_name', 'Reseller ' || 1 + coalesce(c.reseller_id, 0) %% %(res)s)
                       ELSE '{"field": "blocked", "old": true, "new": false}'::jsonb
                   END,
                   run.at
            FROM generate_series(1, %(runs)s) r,
                 LATERAL (SELECT date_trunc('minute', now())
                                 - (r * %(days)s / %(runs)s) * interval '1 day' AS at) run,
                 LATERAL (SELECT * FROM cards_topupcard c
                          WHERE c.id >= 1 + (r * 7919 * 631) %% %(top)s
                            AND c.created_at < run.at
                            AND (c.activated_at IS NULL OR c.activated_at > run.at)
                          ORDER BY c.id LIMIT %(per_run)s) c
            """,
            {
                "runs": EDIT_RUNS,
                "days": EDIT_DAYS,
                "top": max(top - per_run * 20, 1),
                "per_run": per_run,
                "res": RESELLERS,
            },
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE cards_cardevent")
    print(f"loaded {count_edits():,} Mass Edit events in {time.perf_counter() - started:.1f} s")


def count_edits() -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM cards_cardevent WHERE channel = 'admin' "
            "AND kind IN ('edited', 'blocked', 'unblocked')"
        )
        return cur.fetchone()[0]


def count_deleted() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM cards_cardevent WHERE kind = 'deleted'")
        return cur.fetchone()[0]


def count_rows() -> tuple[int, int]:
    """Cards and ledger entries now in the database (the data is reused when they match)."""
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM cards_topupcard")
        cards = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM wallets_ledgerentry")
        return cards, cur.fetchone()[0]


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def median_ms(action, repeat: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def count_star() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM cards_topupcard")
        cur.fetchone()


def pages() -> list[tuple[str, str, dict]]:
    today = timezone.localdate()
    month_end = end_of_previous_month(today)
    year_ago = (today.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
    return [
        ("liability (default: today)", "liabilityreport", {}),
        ("liability, end of last month", "liabilityreport", {"as_of": month_end}),
        (
            "liability by series, a year ago",
            "liabilityreport",
            {"as_of": today - dt.timedelta(days=365), "group_by": "series"},
        ),
        (
            "liability, Reseller 1 USD",
            "liabilityreport",
            {"as_of": month_end, "reseller": 1, "currency": "USD"},
        ),
        ("redemptions (default: 30 days)", "redemptionreport", {}),
        (
            "redemptions, 12 months by series",
            "redemptionreport",
            {
                "date_from": year_ago,
                "date_to": today,
                "granularity": "month",
                "breakdown": "series",
            },
        ),
        (
            "redemptions, 400 days per day",
            "redemptionreport",
            {"date_from": today - dt.timedelta(days=399), "date_to": today, "granularity": "day"},
        ),
        ("breakage (default: 30 days)", "breakagereport", {}),
        (
            "breakage, 12 months by reseller",
            "breakagereport",
            {"date_from": year_ago, "date_to": today, "granularity": "month"},
        ),
        ("expiring soon", "expiringreport", {}),
        ("expiring soon by series", "expiringreport", {"group_by": "series"}),
        ("balances (default: 12 months)", "balancereport", {}),
        (
            "balances, 2 years per week",
            "balancereport",
            {"date_from": today - dt.timedelta(days=729), "date_to": today, "granularity": "week"},
        ),
        ("liability CSV by series", "liabilityreport", {"group_by": "series", "format": "csv"}),
        (
            "liability, a year ago",
            "liabilityreport",
            {"as_of": today - dt.timedelta(days=365)},
        ),
        ("roll-forward (default: last month)", "rollforwardreport", {}),
        (
            "roll-forward, 12 months by reseller",
            "rollforwardreport",
            {"date_from": year_ago, "date_to": today, "granularity": "month"},
        ),
        (
            "roll-forward, 30 days per day",
            "rollforwardreport",
            {
                "date_from": today - dt.timedelta(days=29),
                "date_to": today,
                "granularity": "day",
            },
        ),
        (
            "roll-forward CSV, 12 months",
            "rollforwardreport",
            {"date_from": year_ago, "date_to": today, "granularity": "month", "format": "csv"},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--deleted", type=int, default=50_000, help="deleted cards (events)")
    parser.add_argument("--edits", type=int, default=100_000, help="Mass Edit change events")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reload", action="store_true", help="rebuild the data")
    parser.add_argument(
        "--rebuild-summary", action="store_true", help="time building the daily summaries again"
    )
    parser.add_argument(
        "--existing", action="store_true", help="measure the data as it is: never load anything"
    )
    parser.add_argument(
        "--compare-live",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="rounds of the Redemptions and Balances pages with their summaries, then without",
    )
    args = parser.parse_args()

    if connection.vendor != "postgresql" or "bench" not in connection.settings_dict["NAME"]:
        sys.exit("Run on a PostgreSQL database whose name contains 'bench' (it is truncated).")
    call_command("migrate", verbosity=0)
    loaded = False
    if not args.existing:
        if args.reload or count_rows() != (args.cards, args.entries):
            load(args.cards, args.entries)
            loaded = True
        cards, entries = count_rows()
        if args.reload or count_deleted() != args.deleted:
            load_deleted(args.deleted, cards)
            loaded = True
        if args.reload or count_edits() != args.edits:
            load_edits(args.edits)
            loaded = True
    cards, entries = count_rows()
    from reports.models import CardMovementSummary
    from reports.services.day_summaries import day_summaries_extend, day_summaries_rebuild
    from reports.services.summary import movement_summary_extend, movement_summary_rebuild

    if loaded or args.rebuild_summary or not CardMovementSummary.objects.exists():
        # What the migration does on an existing database (the whole history replayed once).
        started = time.perf_counter()
        rows = movement_summary_rebuild()
        print(
            f"built the daily summary ({rows:,} movement rows) in "
            f"{time.perf_counter() - started:.1f} s (load average {load_average()})"
        )
    else:
        movement_summary_extend()  # what the worker's hourly task does
    if loaded or args.rebuild_summary:
        # What the worker's first run does on a database upgraded to them.
        started = time.perf_counter()
        rows = day_summaries_rebuild()
        print(
            f"built the redemption and ledger daily summaries ({rows:,} rows) in "
            f"{time.perf_counter() - started:.1f} s, peak RSS of this process so far "
            f"{peak_rss_mb():.0f} MB (load average {load_average()})"
        )
    else:
        started = time.perf_counter()
        rows = day_summaries_extend()
        print(
            f"extended the redemption and ledger daily summaries ({rows:,} rows) in "
            f"{time.perf_counter() - started:.1f} s (load average {load_average()})"
        )
    print(
        f"{cards:,} cards, {entries:,} ledger entries, {count_deleted():,} deleted cards, "
        f"{count_edits():,} Mass Edit events; median of {args.repeat} requests; "
        f"load average {load_average()}\n"
    )

    setup_test_environment()
    from django.contrib.auth import get_user_model

    from subscribers.models import Reseller, StaffReseller

    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", "bench@example.com", "bench"
    )
    scoped = User.objects.filter(username="bench-r1").first() or User.objects.create_user(
        "bench-r1", is_staff=True
    )
    from django.contrib.auth.models import Permission

    scoped.user_permissions.set(Permission.objects.filter(content_type__app_label="reports"))
    StaffReseller.objects.update_or_create(
        user=scoped, defaults={"reseller": Reseller.objects.get(pk=1)}
    )
    clients = {"operator": Client(), "reseller-scoped": Client()}
    clients["operator"].force_login(admin)
    clients["reseller-scoped"].force_login(scoped)

    baseline = median_ms(count_star, args.repeat)
    print(f"{'SELECT count(*) FROM cards_topupcard':<44} {baseline:8.1f} ms   (baseline)")
    print(f"{'page':<44} {'median':>8}      {'× count(*)':>10}  target ≤ 500 ms")
    worst = 0.0
    for who, client in clients.items():
        for label, model, params in pages():
            url = reverse(f"admin:reports_{model}_changelist")

            def request(url=url, params=params, client=client):
                response = client.get(url, params)
                assert response.status_code == 200, (url, params, response.status_code)

            ms = median_ms(request, args.repeat)
            worst = max(worst, ms)
            flag = "ok" if ms <= 500 else "SLOW"
            print(
                f"{who[:8] + ': ' + label:<44} {ms:8.1f} ms   {ms / baseline:8.1f}×   {flag}"
                f"   load {load_average()}"
            )
    print(
        f"\nslowest page {worst:.1f} ms = {worst / baseline:.1f}× one count(*) ({baseline:.1f} ms)"
    )
    if args.compare_live:
        compare_live(clients, args.compare_live, args.repeat)


SUMMARIZED_PAGES = ("redemptionreport", "balancereport")


def compare_live(clients: dict, rounds: int, repeat: int) -> None:
    """The Redemptions and Balances pages with their daily summaries and without (every day
    computed live, as before them), alternating, on the same data."""
    from reports.selectors import balances, redemptions

    summarized = redemptions.day_summary_until, balances.day_summary_until
    print(f"\n{'page (summaries / live)':<44} {'summaries':>10} {'live':>10}  rounds alternate")
    for round_ in range(1, rounds + 1):
        for who, client in clients.items():
            for label, model, params in pages():
                if model not in SUMMARIZED_PAGES:
                    continue
                url = reverse(f"admin:reports_{model}_changelist")

                def request(url=url, params=params, client=client):
                    response = client.get(url, params)
                    assert response.status_code == 200, (url, params, response.status_code)

                figures = []
                for live in (False, True):
                    redemptions.day_summary_until = (lambda name: None) if live else summarized[0]
                    balances.day_summary_until = (lambda name: None) if live else summarized[1]
                    figures.append(median_ms(request, repeat))
                redemptions.day_summary_until, balances.day_summary_until = summarized
                print(
                    f"{who[:8] + ': ' + label:<44} {figures[0]:8.1f} ms {figures[1]:8.1f} ms"
                    f"  round {round_}   load {load_average()}"
                )


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
