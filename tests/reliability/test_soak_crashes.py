"""Soak: redemptions and top-ups through gunicorn while PostgreSQL and gunicorn are killed.

The test runs its OWN throwaway PostgreSQL cluster (tests/reliability/soak_cluster.py) so it
may `kill -9` the postmaster; gunicorn serves it with three workers on loopback. Client threads
redeem cards in the panel (two subscribers racing for the same cards), top up with cards over
REST, and top up with external references over REST, retrying whatever did not get an answer.
Meanwhile a chaos thread, in turn: kills a gunicorn worker, crashes the whole database
(postmaster and every backend, `kill -9`) and restarts it, kills one database backend (the
postmaster then resets them all), and kills gunicorn's master with its workers and restarts it.

Afterwards: every request answered with success is in the database, none is there twice, each
redeemed card has exactly one ledger entry, each balance equals its ledger, and the sum of the
balances equals the sum of the ledger.

CI runs it for TOPUP_SOAK_SECONDS=12 (the default); set more for a long soak. It prints its
figures (`-s` shows them).
"""

import http.client
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.reliability.soak_cluster import SoakCluster, Unavailable, children, free_port, kill9
from tests.reliability.support import HttpClient, Reply, api_put

ROOT = Path(__file__).resolve().parents[2]
SOAK_SECONDS = float(os.environ.get("TOPUP_SOAK_SECONDS", "12"))
FAULT_EVERY = float(os.environ.get("TOPUP_SOAK_FAULT_EVERY", "1.5"))
DRAIN_SECONDS = 30  # after the chaos: time for the clients to get answers to what is pending
CARDS = int(min(max(SOAK_SECONDS * 25, 200), 20_000))  # per batch: more than clients can use
REDEEMED = re.compile(r'data-outcome="redeemed">Voucher (\d+-\d+) redeemed')
REFUSED = re.compile(r'data-outcome="(?!redeemed")([a-z_]+)"')

# A throwaway cluster of its own: a pooler in front of the main database changes nothing here.
pytestmark = [pytest.mark.postgres, pytest.mark.direct_connection]


def app_env(database_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "ALLOWED_HOSTS": "127.0.0.1",
        # Retries of a redeemed card are refused as "already redeemed": not a brute force.
        "REDEEM_LOCKOUT_FAILURES": "1000000",
        "REDEEM_LOCKOUT_API_FAILURES": "1000000",
    }


def manage(database_url: str, *args: str, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, *args],
        cwd=ROOT,
        env=app_env(database_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class AppServer:
    """gunicorn with three workers on a loopback port."""

    def __init__(self, database_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = app_env(database_url)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "3",
                "--timeout",
                "30",
                "--graceful-timeout",
                "2",
            ],  # fmt: skip
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def workers(self) -> list[int]:
        return children(self.process.pid) if self.process else []

    def wait_until_serving(self, timeout=60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited")
            try:
                HttpClient(self.url, timeout=2).get("/panel/login/")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def crash(self) -> None:
        """kill -9 the master and every worker."""
        if self.process is None:
            return
        workers = self.workers()
        kill9(self.process.pid)
        for pid in workers:
            kill9(pid)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        workers = self.workers()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill9(self.process.pid)
            self.process.wait()
        for pid in workers:
            kill9(pid)
        self.process = None


def send(call) -> Reply:
    """A request; a refused or broken connection is a reply with status 0."""
    try:
        return call()
    except (OSError, http.client.HTTPException) as error:
        return Reply(0, repr(error))


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.failed = 0  # no answer, or a server error: retried
        self.acked_cards: dict[str, int] = {}  # serial -> balance the caller was told
        self.acked_refs: dict[str, int] = {}
        self.acked_twice: list[str] = []
        self.refused = Counter()

    def count(self, reply: Reply) -> bool:
        """Count a reply; True when it is an answer (success or a definite refusal)."""
        with self.lock:
            self.requests += 1
            if reply.status == 0 or reply.status >= 500:
                self.failed += 1
                return False
            return True

    def ack(self, table: dict, key: str, balance_id: int) -> None:
        with self.lock:
            if key in table and table[key] != balance_id:
                self.acked_twice.append(key)
            table[key] = balance_id


def panel_client(base, subscriber, cards, tally: Tally, stop_at: float, hard_stop: float):
    client = HttpClient(base, timeout=10)
    client.login_as(subscriber["session"])
    for card in cards:
        while time.monotonic() < hard_stop:
            if client.cookie("csrftoken") is None and not tally.count(
                send(lambda: client.get("/panel/redeem/"))
            ):
                time.sleep(0.1)
                continue
            reply = send(lambda c=card: client.post_form("/panel/redeem/", {"code": c["pin"]}))
            if not tally.count(reply):
                time.sleep(0.1)
                continue
            # Every "redeemed" message shown (one may be left from an answer that was lost).
            for serial in REDEEMED.findall(reply.body):
                tally.ack(tally.acked_cards, serial, subscriber["balance_id"])
            for reason in REFUSED.findall(reply.body):
                with tally.lock:
                    tally.refused[f"panel {reason}"] += 1
            break
        if time.monotonic() >= stop_at:
            return


def api_client(base, username, subscriber, items, tally: Tally, stop_at, hard_stop, cards):
    client = HttpClient(base, timeout=10)
    for item in items:
        voucher = item["pin"] if cards else item
        while time.monotonic() < hard_stop:
            reply = send(
                lambda v=voucher: api_put(
                    client,
                    username,
                    subscriber["external_id"],
                    12,
                    "topup",
                    Amount="5.00" if cards else "1.00",
                    Voucher=v,
                )  # fmt: skip
            )
            if not tally.count(reply):
                time.sleep(0.1)
                continue
            if reply.status == 200 and reply.result() == 0:
                table, key = (
                    (tally.acked_cards, item["serial"]) if cards else (tally.acked_refs, item)
                )
                tally.ack(table, key, subscriber["balance_id"])
            else:
                with tally.lock:
                    tally.refused[f"{username} {reply.status}/{reply.result()}"] += 1
            break
        if time.monotonic() >= stop_at:
            return


def chaos(cluster: SoakCluster, app: AppServer, stop_at: float, faults: Counter, errors: list):
    actions = itertools.cycle(["worker", "database", "backend", "app", "worker", "backend"])
    try:
        # Each kind of fault at least once, however slow the machine.
        while time.monotonic() < stop_at or (len(faults) < 4 and time.monotonic() < stop_at + 20):
            time.sleep(FAULT_EVERY)
            action = next(actions)
            if action == "worker":
                workers = app.workers()
                if workers and kill9(workers[0]):
                    faults["gunicorn worker kill -9"] += 1
            elif action == "backend":
                for _ in range(20):  # wait for a backend serving a request
                    if cluster.kill_backend():
                        faults["database backend kill -9"] += 1
                        break
                    time.sleep(0.02)
            elif action == "database":
                cluster.crash()
                faults["database crash (postmaster kill -9) and restart"] += 1
                time.sleep(0.5)
                cluster.start()
            elif action == "app":
                app.crash()
                faults["gunicorn master and workers kill -9 and restart"] += 1
                app.start()
    except Exception as error:  # reported by the test
        errors.append(repr(error))


@pytest.fixture
def cluster():
    try:
        cluster = SoakCluster()
    except Unavailable as error:
        pytest.skip(f"cannot create a PostgreSQL cluster for the soak: {error}")
    try:
        try:
            cluster.create()
        except Unavailable as error:
            pytest.skip(f"cannot create a PostgreSQL cluster for the soak: {error}")
        yield cluster
    finally:
        cluster.remove()


def test_soak_with_database_and_app_server_crashes_loses_nothing(cluster):
    # Load the schema and the data fast (no fsync), then restart durable for the soak.
    cluster.start(durable=False)
    cluster.create_database()
    migrated = manage(cluster.url, "manage.py", "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    seeded = manage(cluster.url, "-m", "tests.reliability.soak_seed", str(CARDS))
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    seed = json.loads(seeded.stdout)
    cluster.stop()
    cluster.start(durable=True)
    app = AppServer(cluster.url)
    app.start()
    try:
        app.wait_until_serving()
        tally, faults, chaos_errors = Tally(), Counter(), []
        started = time.monotonic()
        stop_at = started + SOAK_SECONDS
        hard_stop = stop_at + DRAIN_SECONDS
        s1, s2, s3, s4 = seed["subscribers"]
        references = [f"SOAK-{n}" for n in range(CARDS)]
        threads = [
            threading.Thread(target=chaos, args=(cluster, app, stop_at, faults, chaos_errors)),
            threading.Thread(
                target=panel_client,
                args=(app.url, s1, seed["cards"]["panel"], tally, stop_at, hard_stop),
            ),
            threading.Thread(
                target=panel_client,
                args=(app.url, s2, seed["cards"]["panel"], tally, stop_at, hard_stop),
            ),
            threading.Thread(
                target=api_client,
                args=(app.url, "partner", s3, seed["cards"]["rest"], tally, stop_at, hard_stop),
                kwargs={"cards": True},
            ),
            threading.Thread(
                target=api_client,
                args=(app.url, "vms", s4, references, tally, stop_at, hard_stop),
                kwargs={"cards": False},
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        app.stop()

    assert chaos_errors == []
    assert faults["database crash (postmaster kill -9) and restart"] >= 1
    assert faults["gunicorn master and workers kill -9 and restart"] >= 1
    assert tally.failed > 0, "the faults were noticed by the clients"
    assert tally.acked_twice == []
    assert set(tally.refused) <= {"panel already_redeemed"}, tally.refused

    checked = manage(cluster.url, "manage.py", "check_ledger")
    assert checked.returncode == 0, checked.stderr[-3000:]
    with psycopg.connect(cluster.url) as conn:
        report = verify(conn, tally)
    panel = sum(serial.startswith("61-") for serial in tally.acked_cards)
    print(
        f"\nsoak: {elapsed:.0f}s ({SOAK_SECONDS:.0f}s of faults), {tally.requests} requests, "
        f"{tally.failed} failed and retried, {sum(faults.values())} faults "
        f"({', '.join(f'{n} {kind}' for kind, n in sorted(faults.items()))}); "
        f"acknowledged: {panel} panel redemptions, {len(tally.acked_cards) - panel} REST card "
        f"top-ups, {len(tally.acked_refs)} REST external top-ups; "
        f"committed without a success answer: {report['unacknowledged']}; lost 0, doubled 0"
    )


def verify(conn, tally: Tally) -> dict:
    serial = "c.series || '-' || lpad(c.number::text, 9, '0')"
    cards = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT {serial}, le.balance_id, le.amount FROM cards_topupcard c"  # noqa: S608
            " JOIN wallets_ledgerentry le ON le.id = c.ledger_entry_id"
            " WHERE c.activated_at IS NOT NULL"
        )
    }
    # Every acknowledged redemption is there, on the balance the caller was told.
    for key, balance_id in tally.acked_cards.items():
        assert key in cards, f"acknowledged redemption of {key} lost"
        assert cards[key] == (balance_id, Decimal("5.00"))
    references = dict(
        conn.execute(
            "SELECT ev.reference, le.balance_id FROM wallets_externalvoucher ev"
            " JOIN wallets_ledgerentry le ON le.id = ev.ledger_entry_id"
        ).fetchall()
    )
    for key, balance_id in tally.acked_refs.items():
        assert references.get(key) == balance_id, f"acknowledged top-up {key} lost"
    # None twice: one ledger entry per voucher; each redeemed card has exactly one.
    twice = conn.execute(
        "SELECT voucher FROM wallets_ledgerentry WHERE kind IN ('topup', 'redemption')"
        " GROUP BY voucher HAVING count(*) > 1"
    ).fetchall()
    assert twice == []
    redemptions = [
        row[0]
        for row in conn.execute(
            "SELECT voucher FROM wallets_ledgerentry WHERE kind = 'redemption'"
        ).fetchall()
    ]
    assert sorted(redemptions) == sorted(cards)
    topups = conn.execute("SELECT count(*) FROM wallets_ledgerentry WHERE kind = 'topup'")
    assert topups.fetchone()[0] == len(references)
    # Balances equal the ledger, one by one and in total.
    off = conn.execute(
        "SELECT b.id FROM wallets_balance b LEFT JOIN wallets_ledgerentry le"
        " ON le.balance_id = b.id GROUP BY b.id, b.amount"
        " HAVING b.amount <> coalesce(sum(le.amount), 0)"
    ).fetchall()
    assert off == []
    balances = conn.execute("SELECT sum(amount) FROM wallets_balance").fetchone()[0]
    ledger = conn.execute("SELECT sum(amount) FROM wallets_ledgerentry").fetchone()[0]
    assert balances == ledger
    lost_answers = set(cards) - set(tally.acked_cards)
    unacknowledged = {
        "panel": sum(key.startswith("61-") for key in lost_answers),
        "REST card": sum(key.startswith("62-") for key in lost_answers),
        "REST external": len(set(references) - set(tally.acked_refs)),
    }
    return {"unacknowledged": unacknowledged}
