"""Importing a file of cards through the background job against generating as many cards with
`card_batch_generate` in the same run (issue 15's baseline), by default 1,000,000 of each into a
table that already holds 1,000,000 cards.

The import side is the job code end to end: the admin's request (`import_job_start`: the upload
encrypted into the shared cache, the check job queued), then in a worker process the check job
(`run_import_job`: the file read and checked set-based, the preview recorded), the operator's
confirmation (`import_job_confirm`) and the import job (the file checked again and written in one
transaction, audited). Its time is the check plus the import; the request is timed on its own.
The generation side: `card_batch_generate` of the same number of cards (same amount, currency,
reseller, PIN length 12), its own series. Each side runs in its own child process, so each peak
RSS is that side's own (the request's includes building the file, as an upload held in memory).
Rounds alternate which side goes first; the previous round's cards are deleted and the table
vacuumed before each round, so both sides meet the same table.

Targets: import time <= 2x generation, peak RSS of every side <= 300 MB.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/import.py [--rows 1000000] [--existing 1000000] [--rounds 3]
    .venv/bin/python bench/import.py --smoke    # 5,000 rows into 5,000 cards, one round

Use a bench database: its cards, batches, jobs and events are deleted.
"""

import argparse
import datetime as dt
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "0"

EXISTING_SERIES, IMPORT_SERIES, GENERATE_SERIES = "7", "50", "51"
RESELLER = "Bench Reseller"


def setup():
    import django

    django.setup()


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_file(rows: int, seed: int) -> bytes:
    """Another system's export: unique 13-digit PINs (Luhn digit included), one series. One
    digit longer than the existing and generated cards' PINs, so that no row of it is refused
    for a PIN a card has (a million random 12-digit PINs beside a million others share about
    ten), which would abort the round; the import still looks every PIN up."""
    from cards import pins

    rng = random.Random(seed)  # noqa: S311 - bench data, not a secret
    expires = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    # Distinct without remembering them: number -> (step * number + start) mod 10^12 is one to
    # one for a step prime to 10 (the file is built in memory as an upload is held, no more).
    space = 10**12
    step = rng.randrange(space // 3, space) | 1
    while step % 5 == 0:
        step += 2
    start = rng.randrange(space)
    out = io.BytesIO()
    out.write(b"Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n")
    for number in range(1, rows + 1):
        text = f"{(step * number + start) % space:012d}"
        pin = text + pins.luhn_check_digit(text)
        out.write(f"{IMPORT_SERIES}-{number:09d},10.00,USD,{pin},{RESELLER},{expires}\n".encode())
    return out.getvalue()


def operator():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-importer", defaults={"is_staff": True, "is_superuser": True}
    )
    return user


def run_request(rows: int, seed: int) -> dict:
    from cards.jobs.imports import import_job_start

    data = import_file(rows, seed)
    upload = io.BytesIO(data)  # what Django holds of an upload: read back in 64 KB pieces
    started = time.perf_counter()
    job = import_job_start(
        chunks=iter(lambda: upload.read(64 * 1024), b""),
        file_format="csv",
        file_name="bench.csv",
        rows=rows,
        actor=operator(),
    )
    return {"seconds": time.perf_counter() - started, "job": job.pk, "bytes": len(data)}


def run_worker(job_id: int) -> dict:
    from cards.jobs import run_import_job
    from cards.jobs.imports import import_job_confirm
    from cards.models import CardJob
    from cards.models.jobs import CardJobStatus

    started = time.perf_counter()
    run_import_job.call(job_id)
    checked = time.perf_counter()
    job = CardJob.objects.get(pk=job_id)
    assert job.status == CardJobStatus.SUCCEEDED and job.result["error_rows"] == 0, job.error
    imported = import_job_confirm(job=job, actor=job.requested_by)
    confirmed = time.perf_counter()
    run_import_job.call(imported.pk)
    done = time.perf_counter()
    imported.refresh_from_db()
    assert imported.status == CardJobStatus.SUCCEEDED, imported.error
    return {
        "check": checked - started,
        "confirm": confirmed - checked,
        "import": done - confirmed,
        "seconds": done - started,
        "imported": imported.result["imported"],
    }


def run_generation(rows: int, series: str = GENERATE_SERIES, days: int = 30) -> dict:
    from django.utils import timezone

    from cards.services.generation import card_batch_generate
    from subscribers.models import Reseller

    started = time.perf_counter()
    card_batch_generate(
        series=series,
        quantity=rows,
        amount="10.00",
        currency="USD",
        pin_length=12,
        reseller=Reseller.objects.get(name=RESELLER),
        expires_at=timezone.now() + dt.timedelta(days=days),
    )
    return {"seconds": time.perf_counter() - started}


def child(phase: str, rows: int, seed: int, job_id: int) -> None:
    setup()
    if phase == "request":
        figures = run_request(rows, seed)
    elif phase == "worker":
        figures = run_worker(job_id)
    else:
        figures = run_generation(rows)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def spawn(phase: str, rows: int, seed: int = 0, job_id: int = 0) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--rows", str(rows)]
        + ["--seed", str(seed), "--job", str(job_id)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{phase} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["load"] = load_average()
    return figures


def execute(*statements: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def vacuum() -> None:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    connection.close()
    conn = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    conn.autocommit = True
    for table in ("cards_topupcard", "cards_cardevent", "cards_cardbatch", "topup_cache"):
        conn.execute(f"VACUUM ANALYZE {table}")
    conn.close()


def reset(existing: int) -> None:
    """The existing cards (written once, by the generation service), none of the rounds' cards
    or jobs; fresh statistics."""
    from django.core.management import call_command

    from cards.models import TopUpCard
    from subscribers.models import Reseller
    from wallets.models import BalanceKind, BalanceTemplate

    call_command("createcachetable", verbosity=0)
    Reseller.objects.get_or_create(name=RESELLER)
    BalanceTemplate.objects.get_or_create(
        name="Bench USD", defaults={"kind": BalanceKind.SIMPLE, "currency": "USD", "precision": 2}
    )
    rounds = f"('{IMPORT_SERIES}', '{GENERATE_SERIES}')"
    execute(
        "DELETE FROM cards_cardevent WHERE serial LIKE '50-%' OR serial LIKE '51-%'"
        " OR kind IN ('imported', 'pins_checked')",
        f"DELETE FROM cards_topupcard WHERE series IN {rounds}",
        f"DELETE FROM cards_cardjob WHERE batch_id IN (SELECT id FROM cards_cardbatch"
        f" WHERE series IN {rounds}) OR kind = 'import'",
        f"DELETE FROM cards_cardbatch WHERE series IN {rounds}",
        f"DELETE FROM cards_cardseries WHERE series IN {rounds}",
        "DELETE FROM topup_cache WHERE cache_key LIKE '%cards-import-%'",
    )
    have = TopUpCard.objects.filter(series=EXISTING_SERIES).count()
    if have < existing:
        print(f"writing {existing - have:,} existing cards", flush=True)
        from django.utils import timezone

        # Expired, so the PIN space rule leaves room; their digests are in the unique index.
        run_generation(existing - have, series=EXISTING_SERIES, days=1)
        TopUpCard.objects.filter(series=EXISTING_SERIES).update(
            expires_at=timezone.now() - dt.timedelta(days=1)
        )
    vacuum()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the file / cards")
    parser.add_argument("--existing", type=int, default=1_000_000, help="cards already there")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="5,000 rows, 5,000 existing, 1 round")
    parser.add_argument("--phase", choices=["request", "worker", "generation"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--job", type=int, default=0)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, args.rows, args.seed, args.job)
        return
    if args.smoke:
        args.rows, args.existing, args.rounds = 5_000, 5_000, 1
    setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL: set DATABASE_URL.")
    call_command("migrate", verbosity=0)
    print(
        f"{args.rows:,} rows imported vs {args.rows:,} cards generated, into"
        f" {args.existing:,} existing cards, {args.rounds} rounds",
        flush=True,
    )
    results = []
    for number in range(1, args.rounds + 1):
        reset(args.existing)
        connection.close()
        order = ("import", "generation") if number % 2 else ("generation", "import")
        figures = {}
        for side in order:
            if side == "import":
                request = spawn("request", args.rows, seed=number)
                worker = spawn("worker", args.rows, job_id=request["job"])
                figures["request"], figures["import"] = request, worker
            else:
                figures["generation"] = spawn("generation", args.rows)
        request, worker, generation = figures["request"], figures["import"], figures["generation"]
        ratio = worker["seconds"] / generation["seconds"]
        results.append((ratio, request, worker, generation))
        print(
            f"round {number} ({' then '.join(order)}):\n"
            f"  request {request['seconds']:.1f} s for {request['bytes'] / 1e6:.0f} MB,"
            f" peak RSS {request['peak_rss_mb']:.0f} MB ({request['load']})\n"
            f"  import {worker['seconds']:.1f} s (check {worker['check']:.1f} s, import"
            f" {worker['import']:.1f} s, {worker['imported']:,} cards), peak RSS"
            f" {worker['peak_rss_mb']:.0f} MB ({worker['load']})\n"
            f"  generation {generation['seconds']:.1f} s, peak RSS"
            f" {generation['peak_rss_mb']:.0f} MB ({generation['load']})\n"
            f"  ratio import / generation {ratio:.2f}",
            flush=True,
        )
    ratios = [r[0] for r in results]
    worst_rss = max(max(r[1]["peak_rss_mb"], r[2]["peak_rss_mb"]) for r in results)
    print(
        f"ratio import / generation: median {statistics.median(ratios):.2f}"
        f" ({min(ratios):.2f} to {max(ratios):.2f}); import peak RSS: worker"
        f" {max(r[2]['peak_rss_mb'] for r in results):.0f} MB, request"
        f" {max(r[1]['peak_rss_mb'] for r in results):.0f} MB; generation"
        f" {max(r[3]['peak_rss_mb'] for r in results):.0f} MB ({load_average()})"
    )
    verdict = "ok" if max(ratios) <= 2 and worst_rss <= 300 else "MISS"
    print(
        f"worst ratio {max(ratios):.2f} (target <= 2), worst import peak RSS {worst_rss:.0f} MB"
        f" (target <= 300 MB): {verdict}"
    )


if __name__ == "__main__":
    main()
