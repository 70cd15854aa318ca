"""Streaming export of a big series, beside a raw COPY of the same columns in the same run.

    DATABASE_URL=postgres://… .venv/bin/python bench/export.py [--cards 1000000] [--series 77]
        [--rounds 3]          (smoke run: --cards 2000 --series 78 --rounds 1)

Each round measures the three (COPY, command, HTTP), the order reversed every other round so
neither side always meets a warmer cache; each figure is printed with the load average, then
the median and range of each ratio. Prints: COPY time (baseline), the export command's time,
peak RSS and ratio, and the HTTP export's first byte, total time, the serving gunicorn worker's
peak RSS and ratio. Targets (issue 6):
ratio ≤ 3.0 with PINs decrypted, first byte ≤ 200 ms, serving process peak RSS ≤ 150 MB.
The series is generated through the project's own service the first time (it then stays).
A series larger than EXPORT_HTTP_MAX_CARDS (1M by default) is refused by the admin (it would
outlast gunicorn's 30 s): then only COPY and the command are measured; measure the HTTP side
on a series at the limit (`--cards 1000000 --series 78`) in the same database.
"""

import argparse
import datetime as dt
import http.client
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "0"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from cards.models import TopUpCard  # noqa: E402
from cards.services.generation import card_batch_generate  # noqa: E402

BASELINE_SQL = """
COPY (
  SELECT c.series || '-' || lpad(c.number::text, 9, '0'), c.amount::text, c.currency,
         encode(c.pin_encrypted, 'hex'), r.name,
         CASE WHEN c.activated_at IS NOT NULL THEN 'activated' WHEN c.blocked THEN 'blocked'
              WHEN c.expires_at <= now() THEN 'expired' ELSE 'new' END,
         to_char(c.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00:00',
         to_char(c.activated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00:00',
         to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00:00'
  FROM cards_topupcard c LEFT JOIN subscribers_reseller r ON r.id = c.reseller_id
  WHERE c.series = %s ORDER BY c.series, c.number
) TO STDOUT WITH (FORMAT csv)
"""


def ensure_series(series: str, count: int) -> None:
    have = TopUpCard.objects.filter(series=series).count()
    if have >= count:
        return
    print(f"generating {count - have:,} cards in series {series} (once)…", flush=True)
    from wallets.models import BalanceKind, BalanceTemplate

    # Cards are only made in a currency a balance template uses (cards.currencies).
    BalanceTemplate.objects.get_or_create(
        name="Bench USD", defaults={"kind": BalanceKind.SIMPLE, "currency": "USD", "precision": 2}
    )
    started = time.perf_counter()
    card_batch_generate(
        series=series,
        quantity=count - have,
        amount="10.00",
        currency="USD",
        pin_length=14,
        reseller=None,
        expires_at=timezone.now() + dt.timedelta(days=365),
    )
    print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)


def time_copy(series: str) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(BASELINE_SQL, (series,)) as copy:
            for block in copy:
                size += len(block)
    return time.perf_counter() - started, size


def time_command(series: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "export_cards", "--series", series, "--with-pins"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    size = 0
    while chunk := proc.stdout.read(1 << 20):
        size += len(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"export_cards failed with status {status}")
    return elapsed, size, usage.ru_maxrss * 1024


def session_cookie() -> str:
    user, _ = get_user_model().objects.get_or_create(
        username="bench-export", defaults={"is_staff": True, "is_superuser": True}
    )
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "config.auth.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def rss_high_water(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def time_http(series: str, path: str, port: int) -> tuple[float, float, int, int]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "0"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "30",
            "--env",
            "DJANGO_SETTINGS_MODULE=config.settings.local",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("HEAD", "/")
                break
            except OSError:
                time.sleep(0.1)
        workers = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        cookie = session_cookie()
        # Warm the worker (URLconf, admin registry, templates load on its first request).
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        warm.request("GET", "/admin/", headers={"Cookie": f"sessionid={cookie}"})
        warm.getresponse().read()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        started = time.perf_counter()
        conn.request("GET", path.format(series=series), headers={"Cookie": f"sessionid={cookie}"})
        response = conn.getresponse()
        first = response.read(1)
        first_byte = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"HTTP export answered {response.status}")
        size = len(first)
        while chunk := response.read(1 << 20):
            size += len(chunk)
        total = time.perf_counter() - started
        peak = max(rss_high_water(int(pid)) for pid in workers)
        return first_byte, total, size, peak
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} ({min(values):.2f} to {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=1_000_000)
    parser.add_argument("--series", default="77")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--path", default="/admin/cards/topupcard/export-csv/?series={series}&with_pins=1"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("Run on PostgreSQL: set DATABASE_URL=postgres://…")
    ensure_series(args.series, args.cards)
    rows = TopUpCard.objects.filter(series=args.series).count()
    time_copy(args.series)  # warm the cache so both sides read from memory
    print(f"rows: {rows:,}")
    sides = ["copy", "command", "http"]
    if rows > settings.EXPORT_HTTP_MAX_CARDS:
        sides.remove("http")
        print(
            f"HTTP export not measured: the admin refuses more than "
            f"{settings.EXPORT_HTTP_MAX_CARDS:,} cards (EXPORT_HTTP_MAX_CARDS)"
        )
    ratios: dict[str, list[float]] = {"command": [], "http": []}
    for round_number in range(1, args.rounds + 1):
        order = list(sides)
        if not round_number % 2:
            order.reverse()
        figures = {}
        for side in order:
            if side == "copy":
                copy_s, copy_bytes = time_copy(args.series)
                figures[side] = (
                    f"COPY (SELECT …) TO STDOUT WITH CSV : {copy_s:6.2f} s"
                    f"  {copy_bytes / 1e6:7.1f} MB"
                )
            elif side == "command":
                cmd_s, cmd_bytes, cmd_rss = time_command(args.series)
                figures[side] = (
                    f"manage.py export_cards --with-pins  : {cmd_s:6.2f} s"
                    f"  {cmd_bytes / 1e6:7.1f} MB  peak RSS {cmd_rss / 2**20:5.0f} MB"
                )
            else:
                first, total, size, peak = time_http(args.series, args.path, args.port)
                figures[side] = (
                    f"HTTP export with PINs (gunicorn)     : {total:6.2f} s  {size / 1e6:7.1f} MB"
                    f"  first byte {first * 1000:4.0f} ms  worker peak RSS {peak / 2**20:5.0f} MB"
                )
            figures[side] += f"  {load_average()}"
        ratios["command"].append(cmd_s / copy_s)
        if "http" in sides:
            ratios["http"].append(total / copy_s)
        print(f"round {round_number} ({', '.join(order)}):")
        for side in sides:
            extra = {
                "command": cmd_s / copy_s,
                "http": total / copy_s if "http" in sides else 0,
            }.get(side)
            ratio = f"  ratio {extra:4.2f}× COPY" if extra else ""
            print(f"  {figures[side]}{ratio}", flush=True)
    print(f"export_cards / COPY: {spread(ratios['command'])}")
    if ratios["http"]:
        print(f"HTTP export / COPY : {spread(ratios['http'])}")


if __name__ == "__main__":
    main()
