"""`make run` on its SQLite file stays usable while background work writes (config/settings/
base.py: WAL journal, IMMEDIATE transactions, a busy timeout; docs/domain.md "SQLite").

The server is `manage.py runserver` with the local settings, as `make run` starts it, on a
database file. A second process runs a real card generation and holds its transaction open after
10,000 cards are written: the pages an operator opens meanwhile answer at once, and writers (a
panel redemption; a REST GET, which counts itself in the throttle table) wait for the generation
to commit, then succeed. A writer that waits past the busy timeout is told to retry (503), with
nothing done.
"""

import base64
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from tests.deploy.servers import ROOT, free_port, http, request_bytes, stop, wait_for_port

CSRF = "a" * 32
GENERATED = 25_000


def start(tmp_path, **env_extra):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONPATH": str(ROOT),
        **env_extra,
    }
    seeded = subprocess.run(
        [sys.executable, "-m", "tests.local.sqlite_app", "seed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    seed = json.loads(seeded.stdout.strip().splitlines()[-1])
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "runserver.log", "w"),  # noqa: SIM115 - closed with the process
    )
    wait_for_port(port, server)
    return server, {"port": port, "env": env, "db": tmp_path / "db.sqlite3", **seed}


@pytest.fixture
def app(tmp_path):
    server, app = start(tmp_path)
    yield app
    stop(server)


@pytest.fixture
def impatient_app(tmp_path):
    """The same, with a busy timeout of one second."""
    server, app = start(tmp_path, SQLITE_BUSY_TIMEOUT_SECONDS="1")
    yield app
    stop(server)


def hold_generation(app):
    """A generation in another process, its transaction open with 10,000 cards written; call the
    returned function to let it finish (it returns what the process printed)."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.local.sqlite_app", "hold"],
        cwd=ROOT,
        env=app["env"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "HELD"

    def release() -> str:
        holder.stdin.write("go\n")
        holder.stdin.flush()
        out = holder.stdout.read()
        holder.wait(timeout=120)
        return out.strip()

    return holder, release


@pytest.fixture
def held_generation(app):
    holder, release = hold_generation(app)
    yield release
    stop(holder)


@pytest.fixture
def impatient_held_generation(impatient_app):
    holder, release = hold_generation(impatient_app)
    yield release
    stop(holder)


def get(app, path, *, session=None, headers=None):
    headers = dict(headers or {})
    if session:
        headers["Cookie"] = f"sessionid={app['sessions'][session]}"
    return http(app["port"], request_bytes("GET", path, headers=headers), timeout=120)


def wallet_get(app):
    token = base64.b64encode(f"{app['api_user']}:secret".encode()).decode()
    return get(
        app,
        f"/rsgateway/data/v3/subscription/{app['wallet_ref']}/wallet",
        headers={"Authorization": f"Basic {token}"},
    )


def redeem(app):
    body = f"code={app['pin']}&back=redeem&csrfmiddlewaretoken={CSRF}".encode()
    return http(
        app["port"],
        request_bytes(
            "POST",
            "/panel/redeem/",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"sessionid={app['sessions']['subscriber']}; csrftoken={CSRF}",
            },
        ),
        timeout=120,
    )


def in_background(call, *args):
    """Start `call(*args)` in a thread; the returned function waits for it and gives its value,
    `.waiting()` whether it is still waiting for its answer."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("value", call(*args)))
    thread.start()

    def result():
        thread.join()
        return outcome["value"]

    def waiting() -> bool:
        thread.join(timeout=2)  # time for the request to reach the lock (or fail at once)
        return thread.is_alive()

    result.waiting = waiting
    return result


def state(app):
    """What a redemption changes: the main balance, the redeemed cards, the ledger; and how
    many cards there are."""
    with sqlite3.connect(app["db"]) as db:
        return (
            db.execute(
                "SELECT CAST(amount AS TEXT) FROM wallets_balance WHERE id = ?",
                [app["balance_id"]],
            ).fetchone()[0],
            db.execute(
                "SELECT count(*) FROM cards_topupcard WHERE activated_at IS NOT NULL"
            ).fetchone()[0],
            db.execute("SELECT count(*) FROM wallets_ledgerentry").fetchone()[0],
            db.execute("SELECT count(*) FROM cards_topupcard").fetchone()[0],
        )


def test_operator_pages_answer_while_a_generation_holds_its_transaction(app, held_generation):
    job = get(app, f"/admin/cards/cardjob/{app['job_id']}/change/", session="operator")
    cards = get(app, "/admin/cards/topupcard/", session="operator")
    others = [
        get(app, path, session=who)
        for path, who in [
            (f"/admin/cards/cardjob/{app['job_id']}/progress/", "operator"),
            (f"/admin/wallets/balance/{app['balance_id']}/change/", "operator"),
            ("/admin/", "operator"),
            ("/panel/", "subscriber"),
        ]
    ]
    # All answered while the generation still holds its transaction: they read the database
    # as it was before it (one card).
    assert (job.status, cards.status) == (200, 200), (job.body[:300], cards.body[:300])
    assert [page.status for page in others] == [200] * 4
    assert b"Generating" in job.body
    assert cards.body.count(b'class="action-checkbox"') == 1
    assert state(app)[3] == 1
    assert held_generation() == f"DONE {GENERATED}"
    assert state(app)[3] == 1 + GENERATED


def test_writers_wait_for_the_generation_then_succeed(app, held_generation):
    before = state(app)
    redemption = in_background(redeem, app)
    wallet = in_background(wallet_get, app)
    assert redemption.waiting() and wallet.waiting()
    assert held_generation() == f"DONE {GENERATED}"
    redeemed, wallet = redemption(), wallet()
    assert redeemed.status == 302, redeemed.body[:500]
    assert redeemed.headers["location"] == "/panel/redeem/"
    assert (wallet.status, b"<Result>0</Result>" in wallet.body) == (200, True), wallet.body
    amount, activated, entries, cards = state(app)
    assert (float(amount), activated, entries, cards) == (
        float(before[0]) + 10.0,
        1,
        before[2] + 1,
        1 + GENERATED,
    )


def test_a_writer_that_waits_past_the_timeout_is_told_to_retry_with_nothing_done(
    impatient_app, impatient_held_generation
):
    app = impatient_app
    before = state(app)
    redeemed = redeem(app)
    wallet = wallet_get(app)
    assert redeemed.status == 503, redeemed.body[:500]
    assert redeemed.headers["retry-after"] == "30"
    assert b"try again" in redeemed.body
    assert b"Traceback" not in redeemed.body and b"locked" not in redeemed.body
    assert wallet.status == 503, wallet.body
    assert b"<Result>1</Result>" in wallet.body and b"busy" in wallet.body
    assert wallet.headers["retry-after"] == "30"
    assert state(app) == before
    assert impatient_held_generation() == f"DONE {GENERATED}"
    # Once the batch is in, the same redemption goes through.
    assert redeem(app).status == 302
    assert state(app)[1] == 1
