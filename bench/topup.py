"""Sustained REST top-ups per second, product path against two baselines measured in the same run.

    DATABASE_URL=postgres://topup:topup@127.0.0.1:5432/topup_bench .venv/bin/python bench/topup.py

1. The product: PUT /rsgateway/data/v3/subscription/AccessNumber+…/wallet/12/topup, Token auth,
   card mode, each request with a distinct card PIN, served by gunicorn.
2. Baseline: bench/topup_minimal_app.py, a minimal DRF view that parses the same XML and redeems
   in one SQL statement, served by gunicorn with the same settings and worker count.
3. Baseline: pgbench running that statement alone (cards picked by id, as pgbench cannot HMAC).
4. The panel: Redeem Voucher POSTs (/panel/redeem/) on the product's server, by subscribers
   logged in through the real login page (one session a client), each POST with the session
   cookie, the CSRF cookie and the form's CSRF token read from the Redeem page, and a distinct
   PIN; answered by the redirect (302), which is not followed. Compared with the REST product
   of the same round (issue 15's target: >= 0.5x).

Fair to the baselines (docs: STYLE.md, "Benchmarks a skeptic accepts"): the minimal view's
statement is prepared as the product's are (`wallets.sql.hot_cursor`), pgbench runs it prepared
(`-M prepared`), the same indexes serve both, and the tables are VACUUMed and ANALYZEd (and a
CHECKPOINT asked for) after the fill, before anything is measured. Rounds run product, minimal
view and panel (`--rounds`, at least 3 each), each side in another place in each round (first,
second, last) and after a VACUUM and a CHECKPOINT of its own, each on its own fresh cards; a
warm-up of 50 requests per server is not timed but its errors count. Every figure is printed
with the load average.

Both HTTP runs use the same client: `--clients` threads, one connection per request (gunicorn's
sync workers close it). Prints requests/s, p50/p99 latency, errors, and the ratios; then runs
check_ledger. The database is migrated and filled by the script (use a scratch database).
Smoke run: `--requests 200 --rounds 1 --pgbench-seconds 2`.
"""

import argparse
import datetime as dt
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "0"

BODY = (
    "<MtxRequestSubscriberTopupBalance><Amount>1.00</Amount><Voucher>{pin}</Voucher>"
    "</MtxRequestSubscriberTopupBalance>"
)


def setup_django():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


PANEL_PASSWORD = "bench-panel-password-1"  # noqa: S105 (a scratch database's bench users)


def prepare(subscriptions: int, cards: int, rounds: int, panel_users: int):
    """Subscriptions with main balances, an API client, panel logins for the first
    `panel_users` subscribers, fresh cards for each round of each side, and a batch for
    pgbench."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from cards.models import TopUpCard
    from cards.services.generation import card_batch_generate
    from subscribers.models import AccessNumber, Subscriber, Subscription
    from wallets.models import ApiClient, Balance, BalanceKind, BalanceTemplate, Wallet

    template, _ = BalanceTemplate.objects.get_or_create(
        name="Bench USD", defaults={"kind": BalanceKind.SIMPLE, "currency": "USD", "precision": 2}
    )
    numbers = []
    for n in range(subscriptions):
        number = f"7{n:09d}"
        numbers.append(number)
        if AccessNumber.objects.filter(number=number).exists():
            continue
        subscriber = Subscriber.objects.create(name=f"Bench {n}")
        subscription = Subscription.objects.create(subscriber=subscriber, external_id=f"bench-{n}")
        AccessNumber.objects.create(subscription=subscription, number=number)
        wallet = Wallet.objects.create(subscription=subscription)
        Balance.objects.create(
            wallet=wallet,
            resource_id=12,
            template=template,
            is_main=True,
            start_time=timezone.now() - dt.timedelta(days=1),
        )
    redeemers = Group.objects.get(name="Subscribers")
    panel_logins = []
    for n in range(panel_users):
        username = f"bench-panel-{n}"
        subscriber = Subscriber.objects.get(subscriptions__external_id=f"bench-{n}")
        if subscriber.user_id is None:
            login = get_user_model().objects.create_user(username=username, password=PANEL_PASSWORD)
            login.groups.add(redeemers)
            subscriber.user = login
            subscriber.save(update_fields=["user"])
        panel_logins.append(username)
    user, _ = get_user_model().objects.get_or_create(username="bench-client")
    user.user_permissions.add(Permission.objects.get(codename="topup_balance"))
    ApiClient.objects.get_or_create(user=user)
    token, _ = Token.objects.get_or_create(user=user)

    def batch():
        series = str(
            int(
                TopUpCard.objects.order_by("-series")
                .values_list("series", flat=True)
                .filter(series__regex=r"^9[0-9]{5}$")
                .first()
                or "900000"
            )
            + 1
        )
        return card_batch_generate(
            series=series,
            quantity=cards,
            amount=Decimal("1.00"),
            currency="USD",
            pin_length=16,
            reseller=None,
            expires_at=timezone.now() + dt.timedelta(days=30),
        )

    product = [batch().pins for _ in range(rounds)]
    minimal = [batch().pins for _ in range(rounds)]
    panel = [batch().pins for _ in range(rounds)]
    pgbench_batch = batch().batch
    first = TopUpCard.objects.filter(series=pgbench_batch.series).order_by("pk").first().pk
    return numbers, token.key, product, minimal, panel, panel_logins, (first, first + cards - 1)


def fresh_statistics() -> None:
    """Statistics both sides' plans rely on (the minimal statement picked the amount index on
    stale ones), and no vacuum or checkpoint of the fill landing in a measured round
    (autovacuum's pass over the cards just inserted ran into the first rounds: 0.51 to 0.67 of
    the minimal view in one run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        try:
            cursor.execute("CHECKPOINT")
        except Exception:  # noqa: BLE001 (needs pg_checkpoint; the bench runs without it)
            print("  (CHECKPOINT not allowed for this role: skipped)")


def checkpoint() -> None:
    """Before each side: the dead rows of the side before vacuumed (not by autovacuum during
    this side's round), and its writes checkpointed."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        try:
            cursor.execute("CHECKPOINT")
        except Exception:  # noqa: BLE001 (needs pg_checkpoint; the bench runs without it)
            pass
    connection.close()


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def serve(app: str, port: int, workers: int, settings: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DEBUG": "0",
        "CONN_MAX_AGE": "60",
        "RSGATEWAY_THROTTLE_RATE": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            app,
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--pythonpath",
            str(ROOT),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"gunicorn {app} did not start")


def load(port: int, token: str, numbers: list[str], pin_list: list[str], clients: int) -> dict:
    jobs = list(enumerate(pin_list))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    headers = {"Content-Type": "application/xml", "Authorization": f"Token {token}"}

    def worker():
        while True:
            with lock:
                if not jobs:
                    return
                index, pin = jobs.pop()
            number = numbers[index % len(numbers)]
            path = f"/rsgateway/data/v3/subscription/AccessNumber+{number}/wallet/12/topup"
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("PUT", path, BODY.format(pin=pin), headers)
                response = connection.getresponse()
                content = response.read()
                connection.close()
                if response.status != 200:
                    errors.append(f"{response.status} {content[:200]!r}")
            except OSError as exc:
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(pin_list) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


class Browser:
    """One subscriber's browser: its cookies, and the Redeem form's CSRF token."""

    def __init__(self, port: int, username: str):
        self.port = port
        self.cookies: dict[str, str] = {}
        page = self.request("GET", "/panel/login/")
        token = self.form_token(page)
        self.request(
            "POST",
            "/panel/login/",
            {"username": username, "password": PANEL_PASSWORD, "csrfmiddlewaretoken": token},
        )
        if "sessionid" not in self.cookies:
            raise SystemExit(f"panel login of {username} failed")
        self.token = ""

    def read_form(self):
        """The Redeem page, as a browser opens it before typing a code: a fresh form token."""
        self.token = self.form_token(self.request("GET", "/panel/redeem/"))

    @staticmethod
    def form_token(page: bytes) -> str:
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if match is None:
            raise SystemExit("no CSRF token in the panel's form")
        return match.group(1).decode()

    def request(self, method: str, path: str, form: dict | None = None) -> bytes:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        content = response.read()
        connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.coded_value
        self.status = response.status
        return content

    def redeem(self, pin: str) -> str | None:
        """POST the code; the error, or None when redirected with a success message."""
        self.cookies.pop("messages", None)
        self.request(
            "POST",
            "/panel/redeem/",
            {"code": pin, "back": "redeem", "csrfmiddlewaretoken": self.token},
        )
        if self.status != 302:
            return f"{self.status}"
        # The message travels in the signed messages cookie; its tag says what happened.
        from django.contrib.messages.storage.cookie import CookieStorage

        cookie = SimpleCookie(f"messages={self.cookies.get('messages', '')}")["messages"].value
        shown = CookieStorage(None)._decode(cookie) or []
        if not any("redeemed" in message.tags for message in shown):
            return f"302 without a success message: {[m.message for m in shown]}"
        return None


def panel_load(browsers: list[Browser], pin_list: list[str]) -> dict:
    jobs = list(pin_list)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def worker(browser):
        while True:
            with lock:
                if not jobs:
                    return
                pin = jobs.pop()
            started = time.perf_counter()
            try:
                error = browser.redeem(pin)
                if error:
                    errors.append(error)
            except OSError as exc:
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(b,)) for b in browsers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(pin_list) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def pgbench(card_ids: tuple[int, int], numbers: list[str], clients: int, seconds: int) -> float:
    from bench.topup_minimal_app import REDEEM_SQL

    url = urlparse(os.environ["DATABASE_URL"])
    statement = re.sub(r"\s+", " ", REDEEM_SQL).strip()
    statement = statement.replace("c.pin_digest = %(digest)s", "c.id = :cid")
    statement = statement.replace("%(number)s", "'7' || lpad(:sub::text, 9, '0')")
    statement = statement.replace("%(resource_id)s", "12").replace("%(amount)s", "1.00")
    script = (
        f"\\set cid random({card_ids[0]}, {card_ids[1]})\n"
        f"\\set sub random(0, {len(numbers) - 1})\n{statement};\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    result = subprocess.run(
        [
            "pgbench",
            "-n",
            "-h",
            url.hostname,
            "-p",
            str(url.port or 5432),
            "-U",
            url.username,
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-f",
            handle.name,
            url.path.lstrip("/"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    os.unlink(handle.name)
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    return float(match.group(1)) if match else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="cards a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--subscriptions", type=int, default=64)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database.")
    setup_django()
    if args.clients > args.subscriptions:
        raise SystemExit("--clients: at most --subscriptions (one panel login a client)")
    numbers, token, product_pins, minimal_pins, panel_pins, panel_logins, pgbench_ids = prepare(
        args.subscriptions, args.requests, args.rounds, args.clients
    )
    fresh_statistics()
    from django.db import connections

    connections.close_all()
    sides = {
        "product": ("config.wsgi:application", "config.settings.local", product_pins),
        "minimal": (
            "bench.topup_minimal_app:application",
            "bench.topup_minimal_settings",
            minimal_pins,
        ),
        "panel": ("config.wsgi:application", "config.settings.local", panel_pins),
    }
    print(f"{args.clients} clients, {args.workers} gunicorn workers, {args.requests} cards a round")
    results: dict[str, list[dict]] = {"product": [], "minimal": [], "panel": []}
    browsers: list[Browser] = []
    names = ("product", "minimal", "panel")
    for round_index in range(args.rounds):
        # Each side takes each place in turn (first, second, last), and starts after a
        # checkpoint: the first writes to a page after one log the whole page, which used to
        # fall on whichever side ran first (the product's first round was always its slowest).
        for name in names[round_index % 3 :] + names[: round_index % 3]:
            checkpoint()
            app, settings, pin_sets = sides[name]
            pin_list = pin_sets[round_index]
            server = serve(app, 8765, args.workers, settings)
            try:
                if name == "panel":
                    if not browsers:  # logged in once: the sessions live in the database
                        browsers = [Browser(8765, username) for username in panel_logins]
                    for browser in browsers:
                        browser.read_form()
                    warm_up = panel_load(browsers, pin_list[:50])
                    outcome = panel_load(browsers, pin_list[50:])
                else:
                    warm_up = load(8765, token, numbers, pin_list[:50], args.clients)
                    outcome = load(8765, token, numbers, pin_list[50:], args.clients)
            finally:
                server.terminate()
                server.wait()
            outcome["errors"] = warm_up["errors"] + outcome["errors"]
            outcome["load"] = load_average()
            results[name].append(outcome)
            print(
                f"  round {round_index + 1} {name:8} {outcome['rps']:7.0f} req/s"
                f"   p50 {outcome['p50']:6.1f} ms   p99 {outcome['p99']:6.1f} ms"
                f"   errors {len(outcome['errors'])} (warm-up included)   {outcome['load']}",
                flush=True,
            )
    tps = pgbench(pgbench_ids, numbers, args.clients, args.pgbench_seconds)
    print(f"  pgbench (prepared) {tps:8.0f} TPS (the single statement alone)   {load_average()}")

    def spread(values, unit, digits=0):
        low, mid, high = min(values), statistics.median(values), max(values)
        return f"median {mid:.{digits}f} {unit} ({low:.{digits}f} to {high:.{digits}f})"

    ratios = [
        p["rps"] / m["rps"] for p, m in zip(results["product"], results["minimal"], strict=True)
    ]
    for name, label in (("product", "product"), ("minimal", "minimal view"), ("panel", "panel")):
        runs_ = results[name]
        print(
            f"  {label:13} {spread([r['rps'] for r in runs_], 'req/s')}, p99 "
            f"{spread([r['p99'] for r in runs_], 'ms', 1)}, errors "
            f"{sum(len(r['errors']) for r in runs_)}"
        )
    print(
        f"  product / minimal view, round by round: {', '.join(f'{r:.2f}' for r in ratios)}"
        f" (median {statistics.median(ratios):.2f}; target >= 0.70)"
    )
    panel_ratios = [
        p["rps"] / r["rps"] for p, r in zip(results["panel"], results["product"], strict=True)
    ]
    print(
        f"  panel / REST product, round by round: {', '.join(f'{r:.2f}' for r in panel_ratios)}"
        f" (median {statistics.median(panel_ratios):.2f}; target >= 0.50)"
    )
    if tps:
        product_rps = statistics.median(r["rps"] for r in results["product"])
        print(f"  product / pgbench      = {product_rps / tps:.2f}")
    for outcome in results["product"] + results["minimal"] + results["panel"]:
        for error in outcome["errors"][:5]:
            print("  error:", error)
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("check_ledger", stdout=out)
    print(" ", out.getvalue().strip())


if __name__ == "__main__":
    main()
