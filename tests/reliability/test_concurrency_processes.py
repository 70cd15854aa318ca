"""Mixed load from several processes at once (PostgreSQL): nothing twice, nothing lost.

Eight processes (`load_worker.py`), each with its own connection, start together and go
through the whole HTTP stack: two subscribers redeem the same cards in the panel while a
partner tops up a third subscriber with them over REST (card mode); two processes send the same
external references over REST (external mode); one adjusts the same balances; an operator
mass-edits (expiry and block together) the series the cards belong to while another generates
new batches into that same series. Every success a caller saw is compared with the database.
"""

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from cards.models import CardBatch, CardEvent, TopUpCard
from cards.models.events import CardEventKind
from cards.services.generation import card_batch_generate
from tests.factories import BalanceFactory, ResellerFactory, SubscriberFactory, UserFactory
from tests.panel.conftest import grant_redeem
from tests.reliability.support import assert_books_balance
from tests.wallets.conftest import make_client_user
from wallets.models import Balance, ExternalVoucher, LedgerEntry, LedgerKind, VoucherMode

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POOL = 60  # cards every redeeming process tries
REFERENCES = 40  # external references both external processes send
BATCHES, BATCH_SIZE = 4, 40
MASS_EDITS = 6
CARD_AMOUNT = Decimal("5.00")


def database_url() -> str:
    db = connection.settings_dict
    user, password = urllib.parse.quote(db["USER"]), urllib.parse.quote(db["PASSWORD"])
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def when(days: int) -> str:
    moment = timezone.localtime(timezone.now() + dt.timedelta(days=days))
    return moment.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S")


def run_workers(plan: dict, tmp_path: Path) -> list[list[dict]]:
    """Start one process per worker, release them together, return each one's outcomes."""
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "ALLOWED_HOSTS": "testserver",
        # Contention makes "already redeemed" answers: they must not lock the callers out.
        "REDEEM_LOCKOUT_FAILURES": "100000",
        "REDEEM_LOCKOUT_API_FAILURES": "100000",
    }
    processes = [
        subprocess.Popen(  # noqa: S603 - a fixed command line
            [sys.executable, "-m", "tests.reliability.load_worker", str(plan_path), str(index)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(len(plan["workers"]))
    ]
    try:
        for process in processes:
            line = process.stdout.readline().strip()
            assert line == "ready", (line, process.stderr.read()[-3000:])
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=240)
            lines = out.strip().splitlines()
            assert lines and lines[-1] == "done", err[-3000:]
            outputs.append([json.loads(line) for line in lines[:-1]])
        return outputs
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_mixed_load_from_eight_processes_loses_nothing_and_doubles_nothing(tmp_path):
    reseller = ResellerFactory(name="Load reseller")
    subscribers = [SubscriberFactory(reseller=reseller) for _ in range(3)]
    balances = []
    for subscriber in subscribers:
        grant_redeem(subscriber.user)
        balances.append(
            BalanceFactory(
                wallet__subscription__subscriber=subscriber, resource_id=12, is_main=True
            )
        )
    partner = make_client_user(VoucherMode.CARD, username="partner")
    vms = make_client_user(VoucherMode.EXTERNAL, username="vms")
    admin = UserFactory(username="boss", is_staff=True, is_superuser=True)
    pool = card_batch_generate(
        series="77",
        quantity=POOL,
        amount=CARD_AMOUNT,
        currency="USD",
        pin_length=12,
        reseller=reseller,
        expires_at=timezone.now() + dt.timedelta(days=10),
    )
    original_expiry = pool.batch.expires_at

    def api(balance, **op):
        subscription = balance.wallet.subscription
        return {"external_id": subscription.external_id, "resource_id": 12, **op}

    def shuffled(items, seed):
        items = list(items)
        random.Random(seed).shuffle(items)
        return items

    a, b, c = balances
    redeem_a = [{"op": "redeem", "user_id": subscribers[0].user_id, "pin": p} for p in pool.pins]
    redeem_b = [{"op": "redeem", "user_id": subscribers[1].user_id, "pin": p} for p in pool.pins]
    topup_c = [
        api(c, op="topup", username=partner.username, amount="5.00", voucher=pin)
        for pin in pool.pins
    ]
    references = [
        api(a, op="topup", username=vms.username, amount="1.00", voucher=f"X-{n}")
        for n in range(REFERENCES)
    ]
    adjustments = [
        api(balance, op="adjust", username=vms.username, type=kind, amount=amount)
        for _ in range(10)
        for balance, kind, amount in ((a, 1, "0.25"), (b, 1, "0.50"), (c, 2, "0.10"))
    ]
    mass_edits = []
    for n in range(MASS_EDITS):
        block = n % 2 == 0  # blocked with the 100-day expiry, unblocked with the 200-day one
        mass_edits += [
            {"op": "sleep", "seconds": 0.25},
            {
                "op": "mass_edit",
                "user_id": admin.pk,
                "series": "77",
                "expires_at": when(100 if block else 200),
                "block": "block" if block else "unblock",
            },
        ]
    generations = []
    for _ in range(BATCHES):
        generations += [
            {"op": "sleep", "seconds": 0.3},
            {
                "op": "generate",
                "user_id": admin.pk,
                "series": "77",
                "quantity": BATCH_SIZE,
                "amount": "5.00",
                "reseller_id": reseller.pk,
                "expires_at": when(10),
            },
        ]
    workers = [
        shuffled(redeem_a, 1),
        shuffled(redeem_b, 2),
        shuffled(topup_c, 3),
        shuffled(references, 4),
        shuffled(references, 5),
        adjustments,
        mass_edits,
        generations,
    ]
    started = time.monotonic()

    outcomes = run_workers({"workers": workers}, tmp_path)

    elapsed = time.monotonic() - started
    done = [
        (op, out)
        for ops, outs in zip(workers, outcomes, strict=True)
        for op, out in zip(ops, outs, strict=True)
    ]
    assert [out for _, out in done if "error" in out] == []
    credited = defaultdict(Decimal)  # balance pk -> what the callers were told was added

    # No voucher redeemed twice, and every success a caller saw is in the database.
    serial_of_pin = dict(
        zip(pool.pins, TopUpCard.objects.filter(batch=pool.batch).order_by("number"), strict=True)
    )
    wins = Counter()
    for index, balance in ((0, a), (1, b), (2, c)):
        for op, out in zip(workers[index], outcomes[index], strict=True):
            if out["ok"]:
                card = serial_of_pin[op.get("pin") or op.get("voucher")]
                wins[card.pk] += 1
                card.refresh_from_db()
                assert card.ledger_entry.balance_id == balance.pk
                credited[balance.pk] += CARD_AMOUNT
    assert max(wins.values()) == 1
    activated = TopUpCard.objects.filter(activated_at__isnull=False)
    assert set(activated.values_list("pk", flat=True)) == set(wins)
    assert not activated.filter(blocked=True).exists()

    # External references: both processes are told "OK" (one of them by the replay), once in
    # the books.
    acknowledged = {
        op["voucher"]
        for i in (3, 4)
        for op, out in zip(workers[i], outcomes[i], strict=True)
        if out["ok"]
    }
    assert acknowledged == {f"X-{n}" for n in range(REFERENCES)}
    assert ExternalVoucher.objects.count() == REFERENCES
    credited[a.pk] += REFERENCES * Decimal("1.00")
    for op, out in zip(adjustments, outcomes[5], strict=True):
        assert out["ok"] or op["type"] == 2, out  # a debit may find too little money
        if out["ok"]:
            balance_pk = next(
                x.pk for x in balances if x.wallet.subscription.external_id == op["external_id"]
            )
            sign = 1 if op["type"] == 1 else -1
            credited[balance_pk] += sign * Decimal(op["amount"])

    # No lost update: each balance holds exactly what its callers were told was added.
    for balance in balances:
        assert Balance.objects.get(pk=balance.pk).amount == credited[balance.pk]

    # No serial duplicated or skipped: the series is 1…N and each batch got its own range.
    generated = [out for out in outcomes[7] if "first" in out]
    assert len(generated) == BATCHES
    numbers = list(
        TopUpCard.objects.filter(series="77").order_by("number").values_list("number", flat=True)
    )
    assert numbers == list(range(1, POOL + BATCHES * BATCH_SIZE + 1))
    ranges = sorted((out["first"], out["last"]) for out in generated)
    batches = sorted(
        (b.first_serial, b.last_serial) for b in CardBatch.objects.exclude(pk=pool.batch.pk)
    )
    assert ranges == batches

    # Mass edits: all or nothing on each card (expiry and block move together), and every
    # change reported to the operator is audited once.
    edits = [out for out in outcomes[6] if "changed" in out]
    assert len(edits) == MASS_EDITS and all(out["ok"] for out in edits)
    consistent = {(100, True), (200, False)}
    for card in TopUpCard.objects.filter(series="77"):
        days = round((card.expires_at - timezone.now()) / dt.timedelta(days=1))
        if card.expires_at.date() == original_expiry.date() or days == 10:
            assert card.blocked is False
        else:
            assert (days, card.blocked) in consistent, (card.serial, days, card.blocked)
    reported = Counter()
    for out in edits:
        reported.update(out["changed"])
    assert (
        CardEvent.objects.filter(kind=CardEventKind.EDITED).count() == reported["expiration date"]
    )
    assert (
        CardEvent.objects.filter(kind__in=[CardEventKind.BLOCKED, CardEventKind.UNBLOCKED]).count()
        == reported["block"]
    )

    assert_books_balance()
    assert LedgerEntry.objects.filter(kind=LedgerKind.REDEMPTION).count() == len(wins)
    requests = sum(1 for op, _ in done if op["op"] != "sleep")
    # The load really overlapped: every process was still working when the first one finished.
    first_finished = min(outs[-1]["t"] for outs in outcomes)
    assert all(outs[0]["t"] - outs[0]["ms"] / 1000 < first_finished for outs in outcomes)
    print(
        f"\nconcurrency: {requests} requests from {len(workers)} processes in {elapsed:.1f}s; "
        f"{len(wins)} of {POOL} cards redeemed once each out of {3 * POOL} attempts; "
        f"{REFERENCES} references credited once out of {2 * REFERENCES} sends; "
        f"{sum(out['ok'] for out in outcomes[5])}/{len(adjustments)} adjustments; "
        f"{MASS_EDITS} mass edits ({sum(reported.values())} card changes); "
        f"{BATCHES} batches generated into the same series"
    )
