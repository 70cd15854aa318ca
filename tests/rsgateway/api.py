"""A small client for the Mtx API in either binding, used by the API tests."""

import json
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from tests.wallets.conftest import basic_auth

TOPUP = "MtxRequestSubscriberTopupBalance"
ADJUST = "MtxRequestSubscriberAdjustBalance"
CONTENT_TYPE = {"xml": "application/xml", "json": "application/json"}


def body(binding: str, root: str, fields: dict) -> str:
    if binding == "json":
        return json.dumps({"$": root, **fields})
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    return f"<{root}>{inner}</{root}>"


def reply(response) -> dict:
    """The MtxResponse as a dict with an int Result, whatever the binding."""
    if response["Content-Type"].startswith("application/json"):
        data = response.json()
    else:
        assert response["Content-Type"].startswith("application/xml"), response["Content-Type"]
        root = ElementTree.fromstring(response.content)
        data = {"$": root.tag}
        for child in root:
            if len(child):
                data[child.tag] = [
                    {"$": item.tag, **{f.tag: f.text for f in item}} for item in child
                ]
            else:
                data[child.tag] = child.text
    data["Result"] = int(data["Result"])
    return data


def subscription_ref(balance) -> str:
    return f"ExternalId+{balance.wallet.subscription.external_id}"


class Api:
    def __init__(self, client, binding: str, user=None, password: str = "secret"):
        self.client = client
        self.binding = binding
        self.auth = basic_auth(user.username, password) if user is not None else {}

    def url(self, ref: str, tail: str = "", owner: str = "subscription") -> str:
        prefix = "/rsgateway/data/v3" if self.binding == "xml" else "/rsgateway/data/json"
        return f"{prefix}/{owner}/{ref}/wallet{tail}"

    def send(self, method: str, url: str, data: str = "", content_type=None, **headers):
        content_type = content_type or CONTENT_TYPE[self.binding]
        call = getattr(self.client, method.lower())
        if method.upper() == "GET":
            return call(url, **{**self.auth, **headers})
        return call(url, data, content_type=content_type, **{**self.auth, **headers})

    def put(self, balance_or_ref, operation: str, root: str, fields: dict, **headers):
        if isinstance(balance_or_ref, str):
            ref, resource_id = balance_or_ref.rsplit("/", 1)
        else:
            ref, resource_id = subscription_ref(balance_or_ref), balance_or_ref.resource_id
        url = self.url(ref, f"/{resource_id}/{operation}")
        return self.send("PUT", url, body(self.binding, root, fields), **headers)

    def topup(self, balance, **fields):
        return self.put(balance, "topup", TOPUP, fields)

    def adjust(self, balance, headers=None, **fields):
        return self.put(balance, "adjustment", ADJUST, fields, **(headers or {}))
