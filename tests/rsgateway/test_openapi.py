"""/rsgateway/openapi.json against the server (docs/rest-api.md, "The OpenAPI document").

The document is valid OpenAPI 3.1; every documented request example, replayed on the demo data
(`manage.py seed_demo`) as the demo client it names, gets the status and the reply the document
shows for it; every reply we can provoke is one the document lists, headers included; each
binding takes exactly the media types it documents; every example fits its schema.
"""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from openapi_spec_validator import validate as validate_spec

from cards.exceptions import RedemptionBusy
from rsgateway.openapi.document import openapi_document
from rsgateway.openapi.examples import DEMO_CLIENT
from rsgateway.serializers import JSON_NUMBER_FIELDS, REQUEST_FIELDS
from rsgateway.views import ClientRateThrottle
from tests.rsgateway.openapi_support import (
    assert_documented,
    body_instance,
    resolve,
    validate,
)
from tests.wallets.conftest import basic_auth, snapshot
from wallets.exceptions import Result
from wallets.models import Balance, ExternalVoucher, LedgerEntry

pytestmark = pytest.mark.django_db

DOC = openapi_document()
JSON_PREFIX, JSON_ALIAS = "/rsgateway/data/json/", "/rsgateway/data/json/v3/"
METHODS = ("get", "put", "post", "delete", "patch", "options")


def _operations():
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _example_cases():
    """(path, method, media type, request example name or None, served path) for each replay."""
    for path, method, operation in _operations():
        served = [path] + ([path.replace(JSON_PREFIX, JSON_ALIAS)] if JSON_PREFIX in path else [])
        body = operation.get("requestBody")
        cases = (
            [(media, name) for media, c in body["content"].items() for name in c["examples"]]
            if body
            else [(None, "Result 0")]
        )
        for media, name in cases:
            for url in served:
                yield pytest.param(
                    path, method, media, name, url, id=f"{method} {url} {media} {name}"
                )


def _url(path: str, operation: dict) -> str:
    for parameter in operation["parameters"]:
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", str(parameter["example"]))
    return path


def _send(client, method: str, url: str, media=None, body=None, **headers):
    if method == "get":
        return client.get(url, **headers)
    text = body if isinstance(body, str) else json.dumps(body)
    return getattr(client, method)(url, text, content_type=media, **headers)


def _response_example(operation: dict, name: str) -> tuple[str, object]:
    """The one status whose reply carries the example of this name, and the example's value."""
    found = [
        (status, media["examples"][name]["value"])
        for status, response in operation["responses"].items()
        for media in response["content"].values()
        if name in media["examples"]
    ]
    assert len(found) == 1, f"{name} is shown under {len(found)} statuses"
    return found[0]


@pytest.fixture
def demo():
    call_command("seed_demo", stdout=StringIO())


def rose_main() -> Balance:
    return Balance.objects.get(
        wallet__subscription__access_numbers__number="5555555555", resource_id=12
    )


def test_the_served_document_is_valid_openapi_3_1(client):
    response = client.get("/rsgateway/openapi.json")

    assert response.status_code == 200
    served = response.json()
    validate_spec(served)
    assert served == json.loads(json.dumps(DOC))
    ids = [operation["operationId"] for _, _, operation in _operations()]
    assert len(ids) == len(set(ids)) == 8


@pytest.mark.parametrize(("path", "method", "media", "name", "url"), list(_example_cases()))
def test_every_documented_example_gets_the_documented_reply_on_the_demo_data(
    client, demo, path, method, media, name, url
):
    operation = DOC["paths"][path][method]
    status, shown = _response_example(operation, name)
    body = operation["requestBody"]["content"][media]["examples"][name]["value"] if media else None
    before = snapshot()
    amount_before = rose_main().amount

    response = _send(
        client, method, _url(url, operation), media, body, **basic_auth(DEMO_CLIENT, DEMO_CLIENT)
    )

    assert response.status_code == int(status), response.content
    reply = assert_documented(DOC, path, method, response)
    schema = operation["responses"][status]["content"][response["Content-Type"].split(";")[0]]
    if media is not None:  # a write: the reply is exactly the one shown
        assert reply == body_instance(
            DOC, response["Content-Type"].split(";")[0], shown, schema["schema"]
        )
    if response.status_code != 200:
        assert snapshot() == before
    elif method == "put":
        fields = body if isinstance(body, dict) else None
        amount = (
            Decimal(fields["Amount"]) if fields else Decimal(("25.00", "5.00")["adjust" in path])
        )
        assert rose_main().amount == amount_before + amount
        assert LedgerEntry.objects.count() == before["ledger"] + 1
        call_command("check_ledger", stdout=StringIO())


def test_every_example_fits_its_schema():
    for _, _, operation in _operations():
        contents = (
            [("request", operation["requestBody"]["content"])] if "requestBody" in operation else []
        )
        contents += [(status, r["content"]) for status, r in operation["responses"].items()]
        for _, content in contents:
            for media_type, media in content.items():
                for example in media["examples"].values():
                    instance = body_instance(DOC, media_type, example["value"], media["schema"])
                    validate(DOC, media["schema"], instance)


def test_the_request_schemas_hold_exactly_the_fields_the_parser_takes():
    schemas = DOC["components"]["schemas"]
    for name, fields in REQUEST_FIELDS.items():
        as_json, as_xml = schemas[name], schemas[name + "Xml"]
        assert set(as_json["properties"]) == fields | {"$"} and "$" in as_json["required"]
        assert set(as_xml["properties"]) == fields and as_xml["xml"] == {"name": name}
        numbers = {
            field
            for field, spec in as_json["properties"].items()
            if "number" in resolve(DOC, spec).get("type", ()) or "oneOf" in spec
        }
        assert numbers == JSON_NUMBER_FIELDS & fields


MEDIA_BODIES = {
    "application/xml": "<MtxRequestSubscriberTopupBalance><Amount>25.00</Amount>"
    "<Voucher>M-1</Voucher></MtxRequestSubscriberTopupBalance>",
    "text/xml": "<MtxRequestSubscriberTopupBalance><Amount>25.00</Amount>"
    "<Voucher>M-1</Voucher></MtxRequestSubscriberTopupBalance>",
    "application/json": {
        "$": "MtxRequestSubscriberTopupBalance",
        "Amount": "25.00",
        "Voucher": "M-1",
    },
}


@pytest.mark.parametrize("prefix", ["/rsgateway/data/v3/", JSON_PREFIX])
def test_each_binding_takes_exactly_the_media_types_it_documents(client, demo, prefix):
    path = prefix + "{owner}/{ref}/wallet/{resourceId}/topup"
    operation = DOC["paths"][path]["put"]
    documented = set(operation["requestBody"]["content"])
    outcomes = {}
    for media, body in MEDIA_BODIES.items():
        before = snapshot()
        response = _send(
            client, "put", _url(path, operation), media, body, **basic_auth("vms", "vms")
        )
        assert_documented(DOC, path, "put", response)
        outcomes[media] = response.status_code
        if response.status_code != 200:
            assert snapshot() == before
        ExternalVoucher.objects.all().delete()  # the next media type may use M-1 again

    assert {media for media, status in outcomes.items() if status == 200} == documented
    assert {media for media, status in outcomes.items() if status == 415} == (
        set(MEDIA_BODIES) - documented
    )


def test_a_method_a_path_does_not_document_is_405_with_allow(client, demo):
    for path, item in DOC["paths"].items():
        some = next(iter(item.values()))
        documented = {method.upper() for method in item}
        allow = documented | ({"HEAD"} if "GET" in documented else set())
        for method in set(METHODS) - set(item):
            response = _send(
                client,
                method,
                _url(path, some),
                "application/json",
                "{}",
                **basic_auth("vms", "vms"),
            )
            assert response.status_code == 405, (method, path)
            assert set(response["Allow"].split(", ")) == allow


TOPUP = "/rsgateway/data/{binding}/{{owner}}/{{ref}}/wallet/{{resourceId}}/topup"


def _topup_body(binding: str, **fields):
    fields = {"Amount": "25.00", "Voucher": "F-1", **fields}
    if binding == "json":
        return "application/json", {"$": "MtxRequestSubscriberTopupBalance", **fields}
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return (
        "application/xml",
        f"<MtxRequestSubscriberTopupBalance>{inner}</MtxRequestSubscriberTopupBalance>",
    )


def _boom(**kwargs):
    raise RuntimeError("boom")


def _busy(**kwargs):
    raise RedemptionBusy("The voucher is busy; try again in a moment.")


# Each failure a partner can meet on a top-up, provoked: (name, status, how).
FAILURES = [
    ("no credentials", 401, {"auth": {}}),
    ("rose is no API client", 403, {"auth": basic_auth("rose", "rose")}),
    ("unknown field", 400, {"fields": {"Bonus": "1"}}),
    ("host not allowed", 400, {"headers": {"HTTP_HOST": "evil.example"}}),
    ("wrong media type", 415, {"media": "text/plain"}),
    ("unknown access number", 404, {"ref": "AccessNumber+1"}),
    ("unknown search term", 422, {"ref": "Imsi+1"}),
    ("meter", 422, {"resource_id": 15}),
    ("throttled", 429, {"throttle": True}),
    ("crash", 500, {"patch": _boom}),
    ("busy", 503, {"patch": _busy}),
]


@pytest.mark.parametrize("binding", ["v3", "json"])
@pytest.mark.parametrize(("case", "status", "how"), FAILURES, ids=[f[0] for f in FAILURES])
def test_each_failure_is_a_documented_reply_with_its_headers(
    client, demo, monkeypatch, binding, case, status, how
):
    path = TOPUP.format(binding=binding)
    operation = DOC["paths"][path]["put"]
    media, body = _topup_body("json" if binding == "json" else "xml", **how.get("fields", {}))
    url = _url(path, operation).replace(
        "AccessNumber+5555555555", how.get("ref", "AccessNumber+5555555555")
    )
    url = url.replace("/12/", f"/{how.get('resource_id', 12)}/")
    if "patch" in how:
        monkeypatch.setattr("rsgateway.views.balance_topup_external", how["patch"])
    if how.get("throttle"):
        monkeypatch.setattr(ClientRateThrottle, "THROTTLE_RATES", {"rsgateway": "1/min"})
        _send(client, "get", url.rsplit("/", 2)[0], **basic_auth("vms", "vms"))
    before = snapshot()

    response = _send(
        client,
        "put",
        url,
        how.get("media", media),
        body,
        **how.get("auth", basic_auth("vms", "vms")),
        **how.get("headers", {}),
        HTTP_X_REQUEST_ID="partner-42",
    )

    assert response.status_code == status, response.content
    reply = assert_documented(DOC, path, "put", response)
    assert reply["Result"] in {
        Result.MALFORMED,
        Result.UNAUTHENTICATED,
        Result.FORBIDDEN,
        Result.NOT_FOUND,
        Result.BAD_DATA,
        Result.NOT_SUPPORTED,
        Result.UNKNOWN_SEARCH_TERM,
        Result.INTERNAL_ERROR,
    }
    assert response["X-Request-Id"] == "partner-42"
    assert snapshot() == before


@pytest.mark.parametrize("binding", ["v3", "json"])
def test_the_wallet_reply_has_its_documented_shape(client, demo, binding):
    for path in (
        f"/rsgateway/data/{binding}/{{owner}}/{{ref}}/wallet",
        f"/rsgateway/data/{binding}/{{owner}}/{{ref}}/wallet/{{resourceId}}",
    ):
        operation = DOC["paths"][path]["get"]
        response = client.get(_url(path, operation), **basic_auth("vms", "vms"))

        reply = assert_documented(DOC, path, "get", response)
        balances = reply["BalanceArray"]
        assert [b["ResourceId"] for b in balances] == (
            [12, 13, 14, 15] if path.endswith("wallet") else [12]
        )
        assert Decimal(balances[0]["Amount"]) == rose_main().amount


# --- JSON numbers: accepted as exact text in Amount and AdjustType, refused in text fields ------

JSON_URL = "/rsgateway/data/json/subscription/AccessNumber+5555555555/wallet/12/"


def _put_json(client, operation: str, text: str, user: str = "vms"):
    return client.put(
        JSON_URL + operation, text, content_type="application/json", **basic_auth(user, user)
    )


def test_json_numbers_in_amount_and_adjust_type_are_read_as_their_exact_text(client, demo):
    before = rose_main().amount

    topup = _put_json(
        client,
        "topup",
        '{"$": "MtxRequestSubscriberTopupBalance", "Amount": 25.10, "Voucher": "N-1"}',
    )
    adjust = _put_json(
        client,
        "adjustment",
        '{"$": "MtxRequestSubscriberAdjustBalance", "AdjustType": 2, "Amount": 0.10, '
        '"Reason": "number test"}',
    )

    assert (topup.status_code, adjust.status_code) == (200, 200), (topup.content, adjust.content)
    assert rose_main().amount == before + Decimal("25.10") - Decimal("0.10")
    assert LedgerEntry.objects.get(voucher="N-1").amount == Decimal("25.10")


@pytest.mark.parametrize(
    ("operation", "text"),
    [
        ("topup", '{"$": "MtxRequestSubscriberTopupBalance", "Amount": "25.00", "Voucher": 1234}'),
        (
            "adjustment",
            '{"$": "MtxRequestSubscriberAdjustBalance", "AdjustType": "1", "Amount": "1", '
            '"Reason": 42}',
        ),
        (
            "adjustment",
            '{"$": "MtxRequestSubscriberAdjustBalance", "AdjustType": "1", "Amount": "0", '
            '"Reason": "r", "EndTime": 20991231}',
        ),
    ],
)
def test_a_json_number_in_a_text_field_is_malformed_and_changes_nothing(
    client, demo, operation, text
):
    from cards.models import CardEvent

    before, events = snapshot(), CardEvent.objects.count()

    response = _put_json(client, operation, text, user="partner")

    assert response.status_code == 400
    assert response.json()["Result"] == Result.MALFORMED
    assert "must be a string" in response.json()["ResultText"]
    assert snapshot() == before
    # Not a wrong card PIN: nothing counts towards Rose's redemption lockout.
    assert CardEvent.objects.count() == events
