"""One load process of the multi-process concurrency test (not a test module itself).

    python -m tests.reliability.load_worker PLAN.json INDEX

Runs the operations `plan["workers"][INDEX]` lists through the whole HTTP stack (Django's test
client: middleware, views, services) against the database of DATABASE_URL, after printing
`ready` and reading `go` on stdin, so every process starts at once. Prints one JSON line per
operation with what the caller saw, then `done`.
"""

import json
import os
import re
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from tests.reliability.support import TOPUP, basic_auth, mtx_xml  # noqa: E402

ADJUST = "MtxRequestSubscriberAdjustBalance"
GENERATED = re.compile(r"Generated ([\d,]+) cards: <a [^>]*>(\d+-\d+) … (\d+-\d+)</a>")
MASS_EDIT_DONE = re.compile(r"Mass Edit done: ([^<]*)\.")


class Worker:
    def __init__(self):
        self.clients: dict[int, Client] = {}

    def client(self, user_id: int) -> Client:
        if user_id not in self.clients:
            client = Client()
            client.force_login(get_user_model().objects.get(pk=user_id))
            self.clients[user_id] = client
        return self.clients[user_id]

    def api(self, op: dict, root: str, fields: dict):
        path = (
            f"/rsgateway/data/v3/subscription/ExternalId+{op['external_id']}/wallet/"
            f"{op['resource_id']}/{'topup' if root == TOPUP else 'adjustment'}"
        )
        auth = basic_auth(op["username"])["Authorization"]
        response = Client().put(
            path, mtx_xml(root, **fields), content_type="application/xml", HTTP_AUTHORIZATION=auth
        )
        result = re.search(rb"<Result>(-?\d+)</Result>", response.content)
        code = int(result.group(1)) if result else None
        return {"ok": response.status_code == 200 and code == 0, "result": code}

    def run(self, op: dict) -> dict:
        kind = op["op"]
        if kind == "sleep":
            time.sleep(op["seconds"])
            return {"ok": True}
        if kind == "redeem":
            response = self.client(op["user_id"]).post(
                "/panel/redeem/", {"code": op["pin"]}, follow=True
            )
            return {"ok": 'data-outcome="redeemed"' in response.content.decode()}
        if kind == "topup":
            return self.api(op, TOPUP, {"Amount": op["amount"], "Voucher": op["voucher"]})
        if kind == "adjust":
            fields = {"AdjustType": op["type"], "Amount": op["amount"], "Reason": "load test"}
            return self.api(op, ADJUST, fields)
        if kind == "mass_edit":
            response = self.client(op["user_id"]).post(
                f"/admin/cards/topupcard/mass-edit/?serial_from={op['series']}",
                {
                    "expires_action": "set",
                    "expires_at": op["expires_at"],
                    "reseller_action": "preserve",
                    "block_action": op["block"],
                    "_confirm": "1",
                },
                follow=True,
            )
            done = MASS_EDIT_DONE.search(response.content.decode())
            changed = {}
            for part in done.group(1).split("; ") if done else []:
                field, count = re.match(r"(.+) changed on ([\d,]+) card", part).groups()
                changed[field] = int(count.replace(",", ""))
            return {"ok": done is not None, "changed": changed}
        if kind == "generate":
            response = self.client(op["user_id"]).post(
                "/admin/cards/topupcard/generate/",
                {
                    "amount": op["amount"],
                    "currency": "USD",
                    "quantity": str(op["quantity"]),
                    "series": op["series"],
                    "pin_length": "12",
                    "reseller": str(op["reseller_id"]),
                    "expires_at": op["expires_at"],
                },
                follow=True,
            )
            found = GENERATED.search(response.content.decode())
            if not found:
                return {"ok": False}
            return {"ok": True, "first": found.group(2), "last": found.group(3)}
        raise ValueError(f"unknown operation {kind}")


def main() -> None:
    plan_path, index = sys.argv[1], int(sys.argv[2])
    with open(plan_path) as plan_file:
        ops = json.load(plan_file)["workers"][index]
    worker = Worker()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    for number, op in enumerate(ops):
        started = time.monotonic()
        try:
            outcome = worker.run(op)
        except Exception as error:  # reported to the test, which fails on it
            outcome = {"ok": False, "error": repr(error)}
        outcome.update(n=number, ms=round((time.monotonic() - started) * 1000, 1), t=time.time())
        print(json.dumps(outcome), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
