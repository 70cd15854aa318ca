"""Mass Edit of a whole large series through the background job, end to end, chunked against the
one-transaction job it replaced.

Per round and side: `--cards` cards loaded afresh in series "1" (bench/mass_edit.py's way, then
VACUUM ANALYZE), the confirming request of Mass Edit (expiry + block) through the admin as an
operator (it queues the job), and the job run by a real worker process (`db_worker --batch`).
The side "chunked" is this tree; the side "one transaction" is the code of another checkout
(`--before-tree`, e.g. a worktree of the commit before the chunks) run against the same database.
Rounds alternate the sides, the order rotating each round. Printed per run with the load
average: the job's time, and the longest time any card stayed locked: for the chunked job the
longest chunk (its transaction, timed in the worker), for the other the whole job. Every run is
checked: every card changed, two audit events per card.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    git worktree add --detach /tmp/topup-before <commit before the chunks>
    .venv/bin/python bench/mass_edit_job.py --cards 1000000 --before-tree /tmp/topup-before
    .venv/bin/python bench/mass_edit_job.py --cards 20000 --rounds 1      # smoke run, this tree

The database's cards and events are replaced: use a bench database.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from cards.models import CardEvent, CardJob, TopUpCard  # noqa: E402
from cards.models.jobs import CardJobStatus  # noqa: E402

LOAD_SQL = """
INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest, pin_encrypted,
    pin_length, pin_last4, expires_at, blocked, created_at)
SELECT '1', i + 1, 10, 'USD', sha256(('d' || i)::bytea), sha256(('e' || i)::bytea), 12,
       lpad((i %% 10000)::text, 4, '0'), now() + interval '30 days', false, now()
FROM generate_series(0, %(n)s - 1) AS i
"""
CHUNKED, ONE_TRANSACTION = "chunked", "one transaction"


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def load(count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE cards_cardevent, cards_topupcard RESTART IDENTITY CASCADE")
        cursor.execute(LOAD_SQL, {"n": count})
    connection.close()  # VACUUM outside a transaction block
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE cards_topupcard")
        cursor.execute("VACUUM ANALYZE cards_cardevent")
        cursor.execute("CHECKPOINT")


def queue_job(count: int) -> CardJob:
    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    # Small runs (to try the script) go through the job too.
    settings.MASS_EDIT_SYNC_LIMIT = min(settings.MASS_EDIT_SYNC_LIMIT, count - 1)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    data = {
        "expires_action": "set",
        "expires_at": "2031-06-30 12:00:00",
        "reseller_action": "preserve",
        "block_action": "block",
        "_confirm": "1",
    }
    response = client.post(reverse("admin:cards_topupcard_mass_edit") + "?serial_from=1", data)
    assert response.status_code == 302 and "cardjob" in response["Location"], response
    return CardJob.objects.latest("pk")


def chunk_timing_worker(out: str) -> None:
    """The worker of the chunked side, each chunk's transaction timed (written to `out`)."""
    import cards.jobs.mass

    original, seconds = cards.jobs.mass.job_chunk_edit, []

    def timed_chunk(**kwargs):
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    cards.jobs.mass.job_chunk_edit = timed_chunk
    call_command("db_worker", "--batch", "--no-startup-delay")
    Path(out).write_text(json.dumps(seconds))


def run_side(side: str, before_tree: Path | None) -> list[float]:
    """Run the queued job in a worker process of `side`; the chunks' times (chunked side)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
    if side == ONE_TRANSACTION:
        subprocess.run(
            [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay"],
            cwd=before_tree,
            env=env,
            check=True,
            capture_output=True,
        )
        return []
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, __file__, "--chunk-timing-worker", out.name],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before-tree", type=Path, help="checkout of the one-transaction job")
    parser.add_argument("--chunk-timing-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunk_timing_worker:
        return chunk_timing_worker(args.chunk_timing_worker)
    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL (DATABASE_URL).")
    call_command("migrate", verbosity=0)
    sides = [CHUNKED] + ([ONE_TRANSACTION] if args.before_tree else [])
    print(
        f"{args.cards:,} cards, expiry + block; chunks of {settings.MASS_EDIT_CHUNK_SIZE:,} "
        f"cards; {os.cpu_count()} CPUs"
    )
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_number in range(args.rounds):
        order = sides[round_number % len(sides) :] + sides[: round_number % len(sides)]
        for side in order:
            load(args.cards)
            started = time.perf_counter()
            job = queue_job(args.cards)
            request = time.perf_counter() - started
            started = time.perf_counter()
            chunks = run_side(side, args.before_tree)
            worker = time.perf_counter() - started
            job.refresh_from_db()
            assert job.status == CardJobStatus.SUCCEEDED, (job.status, job.error)
            run = (job.finished_at - job.started_at).total_seconds()
            blocked = TopUpCard.objects.filter(blocked=True, expires_at__year=2031).count()
            events = CardEvent.objects.count()
            assert blocked == args.cards and events == 2 * args.cards, (blocked, events)
            times[side].append(run)
            if chunks:
                longest = (
                    f"{len(chunks)} chunks: median {statistics.median(chunks) * 1000:.0f} ms, "
                    f"longest {max(chunks) * 1000:.0f} ms"
                )
            else:
                longest = f"every card locked {run:.1f} s"
            print(
                f"  round {round_number + 1} {side:<15} job {run:6.1f} s (worker {worker:6.1f} s,"
                f" request {request:.2f} s); {longest}; {load_average()}",
                flush=True,
            )
    for side, runs in times.items():
        print(f"{side:<15} job median {statistics.median(runs):.1f} s, range {min(runs):.1f}–"
              f"{max(runs):.1f} s")  # fmt: skip
    if len(sides) == 2:
        ratios = [a / b for a, b in zip(times[CHUNKED], times[ONE_TRANSACTION], strict=True)]
        print(f"chunked / one transaction, per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    return None


if __name__ == "__main__":
    main()
