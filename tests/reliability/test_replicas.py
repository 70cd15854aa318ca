"""Read replicas with a real streaming replica (docs/replicas.md).

A throwaway primary (initdb) and a hot standby of it (pg_basebackup -R) on loopback ports
55400-55499, as the soak test makes its cluster; gunicorn serves the app with DATABASE_URL on
the primary and DATABASE_REPLICA_URLS on the standby. Which server answered is proven by the
data: the test pauses the standby's replay, so what is written on the primary afterwards is on
the primary only; a page that lacks it was read from the standby, a page that shows it was read
from the primary.

Needs only PostgreSQL's binaries (initdb, pg_basebackup): it skips where they are absent,
whatever database the rest of the suite runs on.
"""

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.reliability.soak_cluster import SoakCluster, Unavailable
from tests.reliability.support import HttpClient

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(55400, 55500)
WARNING = "The read replica is unavailable or too far behind"
EXPORT = "/admin/cards/topupcard/export-csv/"
CHANGELIST = "/admin/cards/topupcard/"
EXPIRING = "/admin/reports/expiringreport/"
BATCHES = "/admin/cards/cardbatch/"

# Its own throwaway primary and standby: the run through PgBouncer has nothing to add here.
pytestmark = pytest.mark.direct_connection


def _port(taken: set[int]) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise Unavailable("no free port in 55400-55499")


class Cluster(SoakCluster):
    DBNAME = "topup_replicas"

    def __init__(self, port: int):
        super().__init__()
        self.port = port

    def start(self, *, durable: bool = True) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=40 -c shared_buffers=16MB -c wal_level=replica "
            "-c max_wal_senders=4 -c fsync=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")  # fmt: skip

    def standby_of(self, primary: "Cluster") -> None:
        """pg_basebackup -R: a copy of the primary that follows it (hot standby)."""
        try:
            self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
                      "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream",
                      "--no-sync")  # fmt: skip
        except (subprocess.CalledProcessError, OSError) as error:
            raise Unavailable(f"pg_basebackup failed: {getattr(error, 'stderr', error)}") from None

    def query(self, statement: str, *params):
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(statement, params).fetchone()


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def replayed_all(primary: Cluster, standby: Cluster) -> None:
    (head,) = primary.query("SELECT pg_current_wal_lsn()::text")
    wait_until(
        lambda: standby.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", head)[0],
        "the standby replays what the primary wrote",
    )


def pause_replay(standby: Cluster) -> None:
    standby.query("SELECT pg_wal_replay_pause()")
    wait_until(
        lambda: standby.query("SELECT pg_get_wal_replay_pause_state()")[0] == "paused",
        "the standby pauses its replay",
    )


def app_env(primary: Cluster, standby: Cluster, **settings: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": primary.url,
        "DATABASE_REPLICA_URLS": standby.url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "ALLOWED_HOSTS": "127.0.0.1",
        **settings,
    }


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def export_cards(env: dict, series: str, *, rows: int) -> str:
    """`manage.py export_cards --series SERIES`: checks the rows, answers what it said."""
    done = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "manage.py", "export_cards", "--series", series],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.splitlines()) == rows + 1
    return done.stderr


class AppServer:
    """gunicorn with one worker (one process: one health cache) on a loopback port."""

    def __init__(self, port: int, env: dict):
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [sys.executable, "-m", "gunicorn", "config.wsgi:application"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_until_serving(self) -> None:
        def serving() -> bool:
            assert self.process.poll() is None, "gunicorn exited"
            try:
                HttpClient(self.url, timeout=2).get("/panel/login/")
                return True
            except OSError:
                return False

        wait_until(serving, "gunicorn serves")

    def client(self, session: str) -> HttpClient:
        client = HttpClient(self.url, timeout=30)
        client.login_as(session)
        return client

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def csv_rows(client: HttpClient, path: str) -> int:
    reply = client.get(path)
    assert reply.status == 200, reply.body[:500]
    lines = reply.body.splitlines()
    assert lines[0].startswith(("Serial Number", "Currency"))
    return len(lines) - 1


def exported(client: HttpClient, series: str) -> int:
    return csv_rows(client, f"{EXPORT}?series={series}")


def expiring(client: HttpClient, series: str) -> int:
    """Rows of the 'expiring soon' report CSV for the series (one per reseller and currency)."""
    return csv_rows(client, f"{EXPIRING}?series={series}&format=csv")


def page(client: HttpClient, path: str) -> str:
    reply = client.get(path)
    assert reply.status == 200, reply.body[:500]
    return reply.body


@pytest.fixture
def clusters():
    taken: set[int] = set()
    made = []
    try:
        try:
            primary = Cluster(_port(taken))
            made.append(primary)
            standby = Cluster(_port(taken))
            made.append(standby)
            primary.create()
            primary.start()
            primary.create_database()
            standby.standby_of(primary)
        except Unavailable as error:
            pytest.skip(f"cannot create PostgreSQL clusters: {error}")
        standby.start()
        yield primary, standby, taken
    finally:
        for cluster in made:
            cluster.remove()


def test_stale_reads_come_from_the_replica_and_everything_else_from_the_primary(clusters):
    primary, standby, taken = clusters
    assert standby.query("SELECT pg_is_in_recovery()")[0] is True
    env = app_env(primary, standby)
    # Schema and data go to the standby by streaming replication, as in production.
    manage(env, "manage.py", "migrate", "--noinput")
    seed = json.loads(manage(env, "-m", "tests.reliability.replica_seed", "setup"))
    replayed_all(primary, standby)
    settings = {"REPLICA_MAX_LAG_SECONDS": "3600"}
    variants = {
        # A health check on every page.
        "fresh": {**settings, "REPLICA_HEALTH_CHECK_SECONDS": "0"},
        # A health check at most once an hour: it keeps believing the standby is up.
        "cached": {**settings, "REPLICA_HEALTH_CHECK_SECONDS": "3600"},
        # Any lag at all is too much.
        "strict": {"REPLICA_MAX_LAG_SECONDS": "0", "REPLICA_HEALTH_CHECK_SECONDS": "0"},
    }
    servers = {
        name: AppServer(_port(taken), app_env(primary, standby, **values))
        for name, values in variants.items()
    }
    try:
        for server in servers.values():
            server.wait_until_serving()
        fresh, cached, strict = servers["fresh"], servers["cached"], servers["strict"]
        operator1, operator2 = seed["sessions"]
        assert exported(cached.client(operator2), "71") == 6  # its health check: the standby is up

        # Another operator generates series 72 while the standby's replay is paused.
        pause_replay(standby)
        manage(env, "-m", "tests.reliability.replica_seed", "batch", "72", "5")
        reader = fresh.client(operator1)
        # Stale-tolerant reads come from the standby: series 72 is not there.
        assert exported(reader, "72") == 0
        assert expiring(reader, "72") == 0
        assert "72-000000001" not in page(reader, f"{CHANGELIST}?series=72")
        assert WARNING not in page(reader, f"{EXPIRING}?series=72")
        # Everything else reads the primary: the batch list shows series 72.
        assert "72-000000001" in page(reader, BATCHES)
        assert exported(reader, "71") == 6

        # Read your writes: operator1 generates series 73 (a write, on the primary: the standby
        # is read-only) and then sees it at once; operator2 does not, reading the standby.
        writer = fresh.client(operator1)
        page(writer, "/admin/cards/topupcard/generate/")  # the CSRF cookie
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=20)).strftime("%Y-%m-%d %H:%M:%S")
        generated = writer.post_form(
            "/admin/cards/topupcard/generate/",
            {
                "amount": "5.00",
                "currency": "USD",
                "quantity": "4",
                "series": "73",
                "pin_length": "12",
                "reseller": str(seed["reseller_id"]),
                "expires_at": expires,
            },
        )
        assert generated.status == 200 and "Generated 4 cards" in generated.body
        assert exported(writer, "73") == 4
        assert expiring(writer, "73") == 1
        assert "73-000000001" in page(writer, f"{CHANGELIST}?series=73")
        assert exported(writer, "72") == 5  # the whole page from the primary, not just 73
        other = fresh.client(operator2)
        assert exported(other, "73") == 0

        # A standby further behind than the bound is skipped, with the warning on the page.
        strict_reader = strict.client(operator2)
        assert exported(strict_reader, "73") == 4
        assert WARNING in page(strict_reader, f"{EXPIRING}?series=73")
        assert WARNING in page(strict_reader, f"{CHANGELIST}?series=73")

        # Once the standby has replayed operator1's write, operator1 reads it again (not the
        # primary for a fixed time): series 74, written after a new pause, is not seen.
        standby.query("SELECT pg_wal_replay_resume()")
        replayed_all(primary, standby)
        # export_cards reads a standby only once it has replayed everything committed before.
        assert "read from replica1" in export_cards(env, "73", rows=4)
        pause_replay(standby)
        manage(env, "-m", "tests.reliability.replica_seed", "batch", "74", "3")
        assert exported(writer, "73") == 4
        assert exported(writer, "74") == 0
        behind = {**env, "REPLICA_MAX_LAG_SECONDS": "0"}  # no waiting for the paused standby
        assert "read from the primary" in export_cards(behind, "74", rows=3)

        # The standby stops: every page is still served, from the primary, with the warning.
        standby.stop()
        for server in (fresh, cached):
            reader = server.client(operator2)
            body = page(reader, f"{EXPIRING}?series=74")
            assert WARNING in body
            assert expiring(reader, "74") == 1
            assert exported(reader, "74") == 3
            assert "74-000000001" in page(reader, f"{CHANGELIST}?series=74")
    finally:
        for server in servers.values():
            server.stop()
