"""The Top-up Cards changelist at 1,000,000 cards against the same page at 1,000 cards.

For the unfiltered list and each single Advanced Search field, times the admin page (Django's
test client in-process: URL routing, permission checks, queries, template) and prints p50/p95 at
both sizes and the p95 ratio. Targets: p95 <= 150 ms at 1M and ratio <= 2.0.

The two sizes live side by side (the big table in `public`, the small one in schema
`bench_small`, chosen per request with `search_path`) and requests alternate between them, so
both are measured under the same machine load.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/changelist.py

The database's cards, batches, events and subscribers are replaced: use a bench database.
Options: --cards N (default 1,000,000), --small N (1,000), --runs N (40 per scenario).
"""

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "0"
os.environ["ALLOWED_HOSTS"] = "testserver"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.bulk import without_indexes  # noqa: E402
from cards import pins  # noqa: E402

RESELLERS = 20
SUBSCRIBERS = 500
KNOWN_PIN = "45242829385" + pins.luhn_check_digit("45242829385")  # one card gets this PIN
SMALL_SCHEMA = "bench_small"
SMALL_TABLES = ("subscribers_reseller", "subscribers_subscriber", "cards_topupcard")

LOAD_SQL = """
INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest, pin_encrypted,
    pin_length, pin_last4, reseller_id, expires_at, blocked, activated_at, activated_by_id,
    created_at)
SELECT ((i %% 10) + 1)::text,
       i / 10 + 1,
       (ARRAY[5, 10, 25, 50, 100])[1 + (i * 7) %% 5],
       'USD',
       sha256(('bench-digest-' || i)::bytea),
       sha256(('bench-encrypted-' || i)::bytea),
       12,
       lpad((i %% 10000)::text, 4, '0'),
       r.ids[1 + (i * 13) %% array_length(r.ids, 1)],
       now() - interval '30 days' + (i %% 400) * interval '1 day',
       i %% 100 = 7,
       CASE WHEN i %% 33 = 0 THEN now() - (i %% 365) * interval '1 day' END,
       CASE WHEN i %% 33 = 0 THEN s.ids[1 + (i / 33) %% array_length(s.ids, 1)] END,
       now() - interval '365 days' + i * (interval '365 days' / %(n)s)
FROM generate_series(0, %(n)s - 1) AS i,
     (SELECT array_agg(id ORDER BY id) AS ids FROM subscribers_reseller) AS r,
     (SELECT array_agg(id ORDER BY id) AS ids FROM subscribers_subscriber) AS s
"""


def use(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SET search_path TO {schema}, public" if schema else "SET search_path TO public"
        )


def make_small_schema() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SMALL_SCHEMA} CASCADE")
        cursor.execute(f"CREATE SCHEMA {SMALL_SCHEMA}")
        for table in SMALL_TABLES:
            cursor.execute(
                f"CREATE TABLE {SMALL_SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)"
            )


def load(n: int, schema: str = "") -> None:
    use(schema)
    with connection.cursor() as cursor:
        if schema:
            cursor.execute(f"TRUNCATE {', '.join(SMALL_TABLES)} RESTART IDENTITY")
        else:
            cursor.execute(
                "TRUNCATE cards_cardevent, cards_topupcard, cards_cardbatch, cards_cardseries,"
                " subscribers_subscriber, subscribers_reseller RESTART IDENTITY CASCADE"
            )
        cursor.execute(
            "INSERT INTO subscribers_reseller (name, created_at)"
            " SELECT 'Reseller ' || i, now() FROM generate_series(1, %s) i",
            [RESELLERS],
        )
        cursor.execute(
            "INSERT INTO subscribers_subscriber (name, reseller_id, created_at)"
            " SELECT 'Client ' || lpad(i::text, 4, '0'), 1, now()"
            " FROM generate_series(1, %s) i",
            [SUBSCRIBERS],
        )
        if schema:
            cursor.execute(LOAD_SQL, {"n": n})
        else:
            with without_indexes(cursor, ["cards_topupcard"]):
                cursor.execute(LOAD_SQL, {"n": n})
        cursor.execute(
            "UPDATE cards_topupcard SET pin_digest = %s, pin_last4 = %s WHERE id = %s",
            [pins.pin_digest(KNOWN_PIN), KNOWN_PIN[-4:], n // 2],
        )
        cursor.execute("VACUUM ANALYZE cards_topupcard")
        cursor.execute("ANALYZE subscribers_subscriber")
        cursor.execute("ANALYZE subscribers_reseller")
    use("")


def scenarios(n: int) -> dict[str, dict]:
    today = timezone.localdate()
    reseller = connection.cursor()
    reseller.execute("SELECT id FROM subscribers_reseller ORDER BY id LIMIT 1 OFFSET 3")
    reseller_id = reseller.fetchone()[0]
    middle = max(n // 20, 1)
    return {
        "none": {},
        "serial from-to": {
            "serial_from": f"3-{middle:09d}",
            "serial_to": f"3-{middle + 50:09d}",
        },
        "serial (series)": {"serial_from": "3"},
        "pin": {"pin": KNOWN_PIN},  # POSTed to the search view, then the pin_ref URL is timed
        "status new": {"status": "new"},
        "status activated": {"status": "activated"},
        "status expired": {"status": "expired"},
        "status blocked": {"status": "blocked"},
        "company": {"reseller": reseller_id},
        "amount from-to": {"amount_min": "25", "amount_max": "25"},
        "expiry from-to": {
            "expires_from": (today + dt_days(100)).isoformat(),
            "expires_to": (today + dt_days(107)).isoformat(),
        },
        "client": {"client": "Client 0042"},
        "activation from-to": {
            "activated_from": (today - dt_days(30)).isoformat(),
            "activated_to": today.isoformat(),
        },
    }


def dt_days(days):
    import datetime as dt

    return dt.timedelta(days=days)


def p95(times: list[float]) -> float:
    times = sorted(times)
    return times[max(int(round(0.95 * len(times))) - 1, 0)]


def prepare(client: Client, params: dict, schema: str):
    """The URL to time (a PIN search is POSTed once, then its pin_ref URL is timed)."""
    use(schema)
    url = reverse("admin:cards_topupcard_changelist")
    if "pin" in params:
        response = client.post(reverse("admin:cards_topupcard_search"), params)
        target, query = response["Location"], None
    else:
        target, query = url, params
    response = client.get(target, query)  # warm-up, and the row count shown
    assert response.status_code == 200, response.status_code
    match = re.search(r"Rows [0-9]+ – [0-9]+ of (about )?([0-9]+)", response.content.decode())
    rows = f"{'~' if match.group(1) else ''}{int(match.group(2)):,}"
    return target, query, rows


def measure(client: Client, small: int, big: int, runs: int) -> dict:
    results = {}
    for name, params in scenarios(big).items():
        small_params = scenarios(small)[name]
        targets = {
            SMALL_SCHEMA: prepare(client, small_params, SMALL_SCHEMA),
            "": prepare(client, params, ""),
        }
        times: dict[str, list[float]] = {SMALL_SCHEMA: [], "": []}
        for _ in range(runs):
            for schema, (target, query, _rows) in targets.items():
                use(schema)
                started = time.perf_counter()
                client.get(target, query)
                times[schema].append((time.perf_counter() - started) * 1000)
        use("")
        results[name] = {
            "small": (statistics.median(times[SMALL_SCHEMA]), p95(times[SMALL_SCHEMA])),
            "big": (statistics.median(times[""]), p95(times[""])),
            "rows": targets[""][2],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the big table if it has --cards rows already"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL: set DATABASE_URL.")
    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first()
    if user is None:
        user = user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM public.cards_topupcard")
        loaded = cursor.fetchone()[0] == args.cards
    if not (args.reuse and loaded):
        load(args.cards)
    make_small_schema()
    load(args.small, SMALL_SCHEMA)
    print(
        f"loaded {args.cards:,} and {args.small:,} cards in {time.perf_counter() - started:.1f} s"
    )
    results = measure(client, args.small, args.cards, args.runs)

    print()
    print(
        f"{'search field':<20} {'rows (big)':>11} {'p50 small':>10} {'p95 small':>10} "
        f"{'p50 big':>8} {'p95 big':>8} {'ratio':>6}  target p95<=150ms ratio<=2.0"
    )
    worst_p95, worst_ratio = 0.0, 0.0
    for name, figures in results.items():
        (s50, s95), (b50, b95) = figures["small"], figures["big"]
        ratio = b95 / s95
        worst_p95, worst_ratio = max(worst_p95, b95), max(worst_ratio, ratio)
        verdict = "ok" if b95 <= 150 and ratio <= 2.0 else "MISS"
        print(
            f"{name:<20} {figures['rows']:>11} {s50:>8.1f}ms {s95:>8.1f}ms {b50:>6.1f}ms "
            f"{b95:>6.1f}ms {ratio:>6.2f}  {verdict}"
        )
    print(
        f"\n{args.small:,} vs {args.cards:,} cards, {args.runs} requests per scenario and size, "
        f"interleaved: worst p95 {worst_p95:.1f} ms, worst ratio {worst_ratio:.2f}"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SMALL_SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
