"""Mass Edit of a whole large series through the background job, end to end.

Loads `--cards` cards in series "1" (bench/mass_edit.py's way), then, as an operator: the
confirming request of Mass Edit (expiry + block) through the admin (it queues the job), and the
job run by a real worker process (`manage.py db_worker --batch`). Prints both times, the cards
and audit events written, and checks every card changed.

    export DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench
    .venv/bin/python bench/mass_edit_job.py --cards 1000000

The database's cards and events are replaced: use a bench database.
"""

import argparse
import os
import subprocess
import sys
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

from cards.models import CardEvent, CardJob, CardJobStatus, TopUpCard  # noqa: E402

LOAD_SQL = """
INSERT INTO cards_topupcard (series, number, amount, currency, pin_digest, pin_encrypted,
    pin_length, pin_last4, expires_at, blocked, created_at)
SELECT '1', i + 1, 10, 'USD', sha256(('d' || i)::bytea), sha256(('e' || i)::bytea), 12,
       lpad((i %% 10000)::text, 4, '0'), now() + interval '30 days', false, now()
FROM generate_series(0, %(n)s - 1) AS i
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run on PostgreSQL (DATABASE_URL).")
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE cards_cardevent, cards_topupcard RESTART IDENTITY CASCADE")
        cursor.execute(LOAD_SQL, {"n": args.cards})
        cursor.execute("VACUUM ANALYZE cards_topupcard")
    print(f"Loaded {args.cards:,} cards in {time.perf_counter() - started:.1f} s")

    user, _ = get_user_model().objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    # Small runs (to try the script) go through the job too.
    settings.MASS_EDIT_SYNC_LIMIT = min(settings.MASS_EDIT_SYNC_LIMIT, args.cards - 1)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    data = {
        "expires_action": "set",
        "expires_at": "2031-06-30 12:00:00",
        "reseller_action": "preserve",
        "block_action": "block",
        "_confirm": "1",
    }
    started = time.perf_counter()
    response = client.post(reverse("admin:cards_topupcard_mass_edit") + "?serial_from=1", data)
    request_seconds = time.perf_counter() - started
    job = CardJob.objects.latest("pk")
    assert response.status_code == 302 and "cardjob" in response["Location"], response
    print(f"Confirming request (counts, queues the job): {request_seconds:.2f} s")

    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay"],
        cwd=ROOT,
        check=True,
    )
    worker_seconds = time.perf_counter() - started
    job.refresh_from_db()
    assert job.status == CardJobStatus.SUCCEEDED, (job.status, job.error)
    run = (job.finished_at - job.started_at).total_seconds()
    events = CardEvent.objects.count()
    blocked = TopUpCard.objects.filter(blocked=True).count()
    print(f"Job: {job.result}; {events:,} audit events; {blocked:,} cards blocked")
    print(f"Worker process {worker_seconds:.1f} s (job itself, started → finished: {run:.1f} s)")
    assert blocked == args.cards and events == 2 * args.cards


if __name__ == "__main__":
    main()
