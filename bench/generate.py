"""Generating a card batch through the service against the least code that writes the same rows,
by default into a table that already holds 3,000,000 cards (the hard case).

Baseline, measured in the same run and into the same table: for each card a random PIN from the
product's generator (11 random digits and a Luhn check digit, kept unique with a set), its
HMAC-SHA256 digest and AES-256-GCM encrypted copy under the configured keys; one binary `COPY`
into a temporary table, then one `INSERT … SELECT … ON CONFLICT (pin_digest) DO NOTHING` into
`cards_topupcard` that also returns the numbers it skipped (the product's statement, unsliced),
and new PINs for those few cards until none is left (the collision handling any writer needs
beside existing cards); one transaction. The
product: `card_batch_generate` (validation, series lock, PIN space check, unique PINs, the
staged write in slices with progress, batch and audit records).

The existing cards (series 7) are written once and kept between runs; they are expired, so the
1-in-10,000 PIN space rule leaves room for the rounds, but their digests are in the unique index
like any card's, so about `cards × existing / 10^11` new PINs collide with them. Rounds alternate
which side goes first; each side runs in its own child process, so peak RSS is each one's own.
The cards of each round stay (the table grows by the same amount for both sides); the previous
run's are deleted (and the table vacuumed) at the start. After the rounds, `generate_cards` runs
once with DEBUG on (what `make run` uses) for the command's peak RSS.

Targets: time ratio <= 1.5, peak RSS of the service and of the command <= 300 MB.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/generate.py [--cards 1000000] [--existing 3000000] [--rounds 3]
    .venv/bin/python bench/generate.py --cards 2000 --existing 20000 --rounds 1   # smoke run
    .venv/bin/python bench/generate.py --existing 0    # into an empty table (truncated each round)

Use a bench database: its cards, batches and events are deleted.
"""

import argparse
import datetime as dt
import hmac
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

EXISTING_SERIES, BASELINE_SERIES, SERVICE_SERIES = "7", "8", "9"
COLUMNS = (
    "series, number, amount, currency, pin_digest, pin_encrypted, pin_length, pin_last4,"
    " reseller_id, expires_at, blocked, batch_id, created_at"
)


def setup(debug: bool = False):
    os.environ["DEBUG"] = "1" if debug else "0"
    import django

    django.setup()


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def raw_connection():
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    connection.close()
    return psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})


def baseline_write(
    series: str, n: int, *, expires: dt.datetime, created: dt.datetime
) -> tuple[int, int]:
    """The baseline writer (also fills the existing cards). Returns (batch id, PINs replaced)."""
    from django.conf import settings
    from django.db.models import Max

    from cards import pins
    from cards.models import CardBatch, TopUpCard
    from subscribers.models import Reseller

    reseller = Reseller.objects.get(name="Bench Reseller")
    first = (TopUpCard.objects.filter(series=series).aggregate(top=Max("number"))["top"] or 0) + 1
    amount = Decimal("10.00")
    batch = CardBatch.objects.create(
        series=series,
        first_number=first,
        quantity=n,
        amount=amount,
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=expires,
    )
    digest_key = pins.digest_keys()[0]
    key_id, aead = pins._encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS))[0]
    prefix = bytes((len(key_id),)) + key_id

    def row(number: int, pin: str) -> tuple:
        clear = pin.encode()
        nonce = os.urandom(12)
        encrypted = prefix + nonce + aead.encrypt(nonce, clear, key_id)
        return number, hmac.digest(digest_key, clear, "sha256"), encrypted, pin[-4:]

    # The product's statement shape: the INSERT reports, in the same statement, the numbers it
    # skipped (no second pass over the batch to find them).
    insert = (
        f"WITH inserted AS (INSERT INTO cards_topupcard ({COLUMNS}) SELECT %s, number, %s, 'USD',"
        " pin_digest, pin_encrypted, 12, pin_last4, %s, %s, false, %s, %s FROM bench_new {where}"
        " ON CONFLICT (pin_digest) DO NOTHING RETURNING number)"
        " SELECT number FROM bench_new AS s {where} AND NOT EXISTS"
        " (SELECT FROM inserted AS i WHERE i.number = s.number)"
    )
    constants = (series, amount, reseller.pk, expires, batch.pk, created)
    replaced = 0
    with raw_connection() as conn, conn.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_new (number int8 PRIMARY KEY, pin_digest bytea NOT NULL,"
            " pin_encrypted bytea NOT NULL, pin_last4 varchar NOT NULL) ON COMMIT DROP"
        )
        with cursor.copy("COPY bench_new FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "bytea", "bytea", "varchar"])
            seen: set[str] = set()
            for number in range(first, first + n):
                pin = pins.generate_pin(12)
                while pin in seen:
                    pin = pins.generate_pin(12)
                seen.add(pin)
                copy.write_row(row(number, pin))
            del seen
        cursor.execute("ANALYZE bench_new")
        cursor.execute(insert.format(where="WHERE true"), (*constants,))
        missing = [number for (number,) in cursor.fetchall()]
        while missing:
            replaced += len(missing)
            fresh = [row(number, pins.generate_pin(12)) for number in missing]
            cursor.execute(
                "UPDATE bench_new s SET pin_digest = v.d, pin_encrypted = v.e, pin_last4 = v.l"
                " FROM unnest(%s::int8[], %s::bytea[], %s::bytea[], %s::text[]) AS v(n, d, e, l)"
                " WHERE s.number = v.n",
                [list(column) for column in zip(*fresh, strict=True)],
            )
            where = "WHERE number = ANY(%s)"
            cursor.execute(insert.format(where=where), (*constants, missing, missing))
            missing = [number for (number,) in cursor.fetchall()]
        conn.commit()
    return batch.pk, replaced


def run_baseline(n: int) -> dict:
    from django.utils import timezone

    now = timezone.now()
    started = time.perf_counter()
    _, replaced = baseline_write(
        BASELINE_SERIES, n, expires=now + dt.timedelta(days=30), created=now
    )
    return {"seconds": time.perf_counter() - started, "replaced": replaced}


def run_service(n: int) -> dict:
    from django.utils import timezone

    from cards.services.generation import card_batch_generate
    from subscribers.models import Reseller

    reseller = Reseller.objects.get(name="Bench Reseller")
    started = time.perf_counter()
    result = card_batch_generate(
        series=SERVICE_SERIES,
        quantity=n,
        amount="10.00",
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=timezone.now() + dt.timedelta(days=30),
    )
    elapsed = time.perf_counter() - started
    assert result.batch.cards.count() == n
    return {"seconds": elapsed}


def run_command(n: int) -> dict:
    from django.core.management import call_command
    from django.utils import timezone

    started = time.perf_counter()
    call_command(
        "generate_cards",
        series=SERVICE_SERIES,
        quantity=n,
        amount="10.00",
        reseller="Bench Reseller",
        expires=f"{timezone.now() + dt.timedelta(days=30):%Y-%m-%d}",
        stdout=io.StringIO(),
    )
    return {"seconds": time.perf_counter() - started}


def child(phase: str, n: int) -> None:
    setup(debug=phase == "command")
    run = {"baseline": run_baseline, "service": run_service, "command": run_command}[phase]
    figures = run(n)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def spawn(phase: str, n: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--cards", str(n)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{phase} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["load"] = load_average()
    return figures


def sql(*statements: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def vacuum() -> None:
    from django.db import connection

    connection.close()
    with raw_connection() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE cards_topupcard")
        conn.execute("VACUUM ANALYZE cards_cardbatch")


def reset(existing: int) -> None:
    """The existing cards (written once), none of the rounds' cards; fresh statistics."""
    from django.utils import timezone

    from cards.models import TopUpCard
    from subscribers.models import Reseller

    Reseller.objects.get_or_create(name="Bench Reseller")
    from wallets.models import BalanceKind, BalanceTemplate

    # Cards are only made in a currency a balance template uses (cards.currencies).
    BalanceTemplate.objects.get_or_create(
        name="Bench USD", defaults={"kind": BalanceKind.SIMPLE, "currency": "USD", "precision": 2}
    )
    if not existing:
        sql(
            "TRUNCATE cards_cardevent, cards_topupcard, cards_cardbatch, cards_cardseries"
            " RESTART IDENTITY CASCADE"
        )
        return
    bench = (BASELINE_SERIES, SERVICE_SERIES)
    if TopUpCard.objects.filter(series__in=bench).exists():
        sql(
            "DELETE FROM cards_cardevent WHERE batch_id IN (SELECT id FROM cards_cardbatch"
            " WHERE series IN ('8', '9'))",
            "DELETE FROM cards_topupcard WHERE series IN ('8', '9')",
            "DELETE FROM cards_cardbatch WHERE series IN ('8', '9')",
            "DELETE FROM cards_cardseries WHERE series IN ('8', '9')",
        )
    have = TopUpCard.objects.filter(series=EXISTING_SERIES).count()
    if have > existing:
        sys.exit(
            f"Series {EXISTING_SERIES} holds {have:,} cards, more than --existing:"
            " use another database."
        )
    past = timezone.now() - dt.timedelta(days=400)
    while have < existing:
        step = min(1_000_000, existing - have)
        print(f"writing existing cards {have:,} … {have + step:,}", flush=True)
        baseline_write(EXISTING_SERIES, step, expires=past + dt.timedelta(days=30), created=past)
        have += step
    vacuum()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1_000_000, help="cards a batch")
    parser.add_argument("--existing", type=int, default=3_000_000, help="cards already there")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-command", action="store_true", help="skip the generate_cards run")
    parser.add_argument("--phase", choices=["baseline", "service", "command"])
    args = parser.parse_args()
    if args.phase:
        child(args.phase, args.cards)
        return
    setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL: set DATABASE_URL.")
    call_command("migrate", verbosity=0)
    reset(args.existing)
    connection.close()
    where = f"into {args.existing:,} existing cards" if args.existing else "into an empty table"
    print(f"{args.cards:,}-card batches {where}, {args.rounds} rounds", flush=True)
    rows = []
    for round_number in range(1, args.rounds + 1):
        if not args.existing:
            reset(0)
            connection.close()
        # alternate the order, so neither side always meets a warmer database
        order = ("baseline", "service") if round_number % 2 else ("service", "baseline")
        figures = {phase: spawn(phase, args.cards) for phase in order}
        baseline, service = figures["baseline"], figures["service"]
        ratio = service["seconds"] / baseline["seconds"]
        rows.append((baseline, service, ratio))
        print(
            f"round {round_number} ({' then '.join(order)}): baseline {baseline['seconds']:.1f} s"
            f" ({baseline['replaced']} PINs replaced, peak RSS {baseline['peak_rss_mb']:.0f} MB,"
            f" {baseline['load']}) | service {service['seconds']:.1f} s (peak RSS"
            f" {service['peak_rss_mb']:.0f} MB, {service['load']}) | ratio {ratio:.2f}",
            flush=True,
        )
    ratios = [r[2] for r in rows]
    service_rss = max(r[1]["peak_rss_mb"] for r in rows)
    print(
        f"ratio service / baseline: median {statistics.median(ratios):.2f}"
        f" ({min(ratios):.2f} to {max(ratios):.2f}); service peak RSS {service_rss:.0f} MB"
    )
    worst = [max(ratios), service_rss]
    if not args.no_command:
        command = spawn("command", args.cards)
        print(
            f"generate_cards, DEBUG on: {command['seconds']:.1f} s, peak RSS"
            f" {command['peak_rss_mb']:.0f} MB ({command['load']})"
        )
        worst[1] = max(worst[1], command["peak_rss_mb"])
    verdict = "ok" if worst[0] <= 1.5 and worst[1] <= 300 else "MISS"
    print(
        f"worst ratio {worst[0]:.2f} (target <= 1.5), worst peak RSS {worst[1]:.0f} MB"
        f" (target <= 300 MB): {verdict}"
    )


if __name__ == "__main__":
    main()
