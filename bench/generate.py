"""Generating a 1,000,000-card series through the service against a plain psycopg COPY.

Baseline, measured in the same run: the least code that writes equivalent rows: for each card
a random 12-digit PIN from the OS CSPRNG (kept unique with a set), its HMAC-SHA256 digest and
AES-256-GCM encrypted copy under the configured keys, then one binary `COPY` into a table
created `LIKE cards_topupcard INCLUDING ALL` (same columns, indexes, unique and check
constraints) with the same foreign keys, in one transaction. The product:
`card_batch_generate` (validation, series lock, PIN space check, Luhn check digits, unique
PINs, binary COPY, batch and audit records).

Each side runs in its own child process, so peak RSS is each one's own. Targets: time ratio
<= 1.5 and the service's peak RSS <= 300 MB.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/generate.py [--cards 1000000] [--rounds 1]

The database's cards, batches and events are deleted: use a bench database.
"""

import argparse
import datetime as dt
import hmac
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "0"

BASELINE_TABLE = "bench_copy_cards"


def setup():
    import django

    django.setup()


def reset_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE cards_cardevent, cards_topupcard, cards_cardbatch, cards_cardseries"
            " RESTART IDENTITY CASCADE"
        )
        cursor.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
        cursor.execute(f"CREATE TABLE {BASELINE_TABLE} (LIKE cards_topupcard INCLUDING ALL)")
        cursor.execute(
            f"ALTER TABLE {BASELINE_TABLE} ADD FOREIGN KEY (reseller_id)"
            " REFERENCES subscribers_reseller (id) DEFERRABLE INITIALLY DEFERRED,"
            " ADD FOREIGN KEY (batch_id)"
            " REFERENCES cards_cardbatch (id) DEFERRABLE INITIALLY DEFERRED"
        )
    from subscribers.models import Reseller

    Reseller.objects.get_or_create(name="Bench Reseller")


def run_baseline(n: int) -> dict:
    """Plain psycopg: random PIN, digest, encryption, binary COPY. Nothing else."""
    import psycopg
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from cards import pins
    from cards.models import CardBatch
    from subscribers.models import Reseller

    reseller = Reseller.objects.get(name="Bench Reseller")
    from wallets.models import BalanceKind, BalanceTemplate

    # Cards are only made in a currency a balance template uses (cards.currencies).
    BalanceTemplate.objects.get_or_create(
        name="Bench USD", defaults={"kind": BalanceKind.SIMPLE, "currency": "USD", "precision": 2}
    )
    now = timezone.now()
    expires = now + dt.timedelta(days=30)
    batch = CardBatch.objects.create(
        series="8",
        first_number=1,
        quantity=n,
        amount=Decimal("10.00"),
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=expires,
    )
    digest_key = pins.digest_keys()[0]
    key_id, aead = pins._encryption_keys(tuple(settings.PIN_ENCRYPTION_KEYS))[0]
    prefix = bytes((len(key_id),)) + key_id
    params = connection.get_connection_params()
    connection.close()
    started = time.perf_counter()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as conn:
        with conn.cursor() as cursor:
            with cursor.copy(
                f"COPY {BASELINE_TABLE} (series, number, amount, currency, pin_digest,"
                " pin_encrypted, pin_length, pin_last4, reseller_id, expires_at, blocked,"
                " batch_id, created_at) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(
                    [
                        "varchar",
                        "int8",
                        "numeric",
                        "varchar",
                        "bytea",
                        "bytea",
                        "int2",
                        "varchar",
                        "int8",
                        "timestamptz",
                        "bool",
                        "int8",
                        "timestamptz",
                    ]
                )
                amount = Decimal("10.00")
                seen: set[str] = set()
                for number in range(1, n + 1):
                    pin = f"{secrets.randbelow(10**12):012d}"
                    while pin in seen:  # the table's unique digest needs unique PINs
                        pin = f"{secrets.randbelow(10**12):012d}"
                    seen.add(pin)
                    clear = pin.encode()
                    nonce = os.urandom(12)
                    copy.write_row(
                        (
                            "8",
                            number,
                            amount,
                            "USD",
                            hmac.digest(digest_key, clear, "sha256"),
                            prefix + nonce + aead.encrypt(nonce, clear, key_id),
                            12,
                            pin[-4:],
                            reseller.pk,
                            expires,
                            False,
                            batch.pk,
                            now,
                        )
                    )
        conn.commit()
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed}


def run_service(n: int) -> dict:
    from django.utils import timezone

    from cards.services.generation import card_batch_generate
    from subscribers.models import Reseller

    reseller = Reseller.objects.get(name="Bench Reseller")
    started = time.perf_counter()
    result = card_batch_generate(
        series="9",
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


def child(phase: str, n: int) -> None:
    setup()
    figures = run_baseline(n) if phase == "baseline" else run_service(n)
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
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--phase", choices=["baseline", "service"])
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
    rows = []
    for round_number in range(1, args.rounds + 1):
        reset_tables()
        connection.close()
        # alternate the order, so neither side always meets a warmer database
        if round_number % 2:
            baseline = spawn("baseline", args.cards)
            service = spawn("service", args.cards)
        else:
            service = spawn("service", args.cards)
            baseline = spawn("baseline", args.cards)
        ratio = service["seconds"] / baseline["seconds"]
        rows.append((baseline, service, ratio))
        print(
            f"round {round_number}: plain COPY {baseline['seconds']:.1f} s "
            f"({args.cards / baseline['seconds']:,.0f} cards/s, peak RSS "
            f"{baseline['peak_rss_mb']:.0f} MB) | service {service['seconds']:.1f} s "
            f"({args.cards / service['seconds']:,.0f} cards/s, peak RSS "
            f"{service['peak_rss_mb']:.0f} MB) | ratio {ratio:.2f}",
            flush=True,
        )
    worst_ratio = max(r[2] for r in rows)
    worst_rss = max(r[1]["peak_rss_mb"] for r in rows)
    verdict = "ok" if worst_ratio <= 1.5 and worst_rss <= 300 else "MISS"
    print(
        f"{args.cards:,} cards: worst ratio {worst_ratio:.2f} (target <= 1.5), service peak RSS "
        f"{worst_rss:.0f} MB (target <= 300 MB): {verdict}"
    )
    reset_tables()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")


if __name__ == "__main__":
    main()
