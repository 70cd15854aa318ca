"""The background worker outlives a database restart (issue 15).

A throwaway PostgreSQL cluster of the test's own (tests/reliability/soak_cluster.py) and a real
`manage.py run_worker` process. A Mass Edit job is held after it has written (a trigger of the
test's own makes its card UPDATE wait on an advisory lock the test holds); the cluster is then
restarted. The worker must still be running; the job must show as interrupted with every card
as it was and no audit event; and a job queued afterwards must run, without a worker restart.
"""

import subprocess
import sys
import time

import psycopg
import pytest
from django_tasks_db.models import DBTaskResult

from cards.jobs.runner import INTERRUPTED
from tests.reliability.soak_cluster import SoakCluster, Unavailable
from tests.reliability.test_soak_crashes import ROOT, app_env, manage

# A throwaway cluster of its own: a pooler in front of the main database changes nothing here.
pytestmark = [pytest.mark.postgres, pytest.mark.direct_connection]

WORKER = "run_worker"
HOLD_KEY = 4242
HOLD_UPDATES = f"""
CREATE FUNCTION topup_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock_shared({HOLD_KEY});
    PERFORM pg_advisory_unlock_shared({HOLD_KEY});
    RETURN NULL;
END $$;
CREATE TRIGGER topup_test_hold AFTER UPDATE ON cards_topupcard
    FOR EACH STATEMENT EXECUTE FUNCTION topup_test_hold();
"""


@pytest.fixture
def cluster():
    try:
        cluster = SoakCluster()
    except Unavailable as error:
        pytest.skip(f"cannot create a PostgreSQL cluster: {error}")
    try:
        try:
            cluster.create()
        except Unavailable as error:
            pytest.skip(f"cannot create a PostgreSQL cluster: {error}")
        yield cluster
    finally:
        cluster.remove()


def until(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def query(cluster, statement: str, params=()):
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    except psycopg.OperationalError:
        return None


def job(cluster, job_id: int):
    rows = query(cluster, "SELECT status, error FROM cards_cardjob WHERE id = %s", [job_id])
    return rows[0] if rows else None


def queue(cluster, kind: str) -> int:
    done = manage(cluster.url, "-m", "tests.reliability.worker_outage_jobs", kind)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def cards(cluster):
    return query(cluster, "SELECT id, blocked FROM cards_topupcard WHERE series = '7' ORDER BY id")


# Down for a moment: the library's own retries record the task's failure once the database is
# back. Down for longer: those give up, and the worker waits for the database itself.
@pytest.mark.parametrize("down_for", [0, 4])
def test_worker_survives_a_database_restart_and_reports_the_job_it_cut_short(cluster, down_for):
    cluster.start(durable=False)
    cluster.create_database()
    for step in (["manage.py", "migrate", "--noinput"],
                 ["-m", "tests.reliability.worker_outage_jobs", "seed"]):  # fmt: skip
        done = manage(cluster.url, *step)
        assert done.returncode == 0, done.stderr
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(HOLD_UPDATES)
    before = cards(cluster)
    log = (cluster.root / "worker.log").open("w")
    worker = subprocess.Popen(  # noqa: S603 - a fixed command line
        [sys.executable, "manage.py", WORKER, "--no-startup-delay", "--no-reload",
         "--interval", "0.2"],
        cwd=ROOT, env=app_env(cluster.url),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        holder = psycopg.connect(cluster.url, autocommit=True)
        holder.execute("SELECT pg_advisory_lock(%s)", [HOLD_KEY])
        cut_short = queue(cluster, "mass_edit")
        # The job has written (its events and the UPDATE, a transaction id) and waits.
        until(
            lambda: query(
                cluster,
                "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' "
                "AND backend_xid IS NOT NULL",
            ),
            "the job to hold its written work",
        )
        assert job(cluster, cut_short)[0] == "running"

        cluster.stop()
        holder.close()
        time.sleep(down_for)  # not a timing assertion: how long the database stays away
        cluster.start()

        status, error = until(
            lambda: (found := job(cluster, cut_short)) and found[0] != "running" and found,
            "the job to be reported",
        )
        assert (status, error) == ("failed", INTERRUPTED)
        assert cards(cluster) == before  # nothing of the job applied
        assert query(cluster, "SELECT count(*) FROM cards_cardevent") == [(0,)]
        tasks = query(cluster, f"SELECT status FROM {DBTaskResult._meta.db_table}")  # noqa: S608
        assert tasks == [("FAILED",)]
        assert worker.poll() is None, "the worker exited"

        query(cluster, "DROP TRIGGER topup_test_hold ON cards_topupcard")
        after = queue(cluster, "generate")

        until(lambda: job(cluster, after) == ("succeeded", ""), "the queued job to run")
        generated = query(cluster, "SELECT count(*) FROM cards_topupcard WHERE series = '8'")
        assert generated == [(20,)]
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        # What the worker said, shown by pytest when the test failed.
        print((cluster.root / "worker.log").read_text())
