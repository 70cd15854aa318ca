"""Request bodies and charsets through real servers (docs/rest-api.md, Request bodies).

Django's test client always sends a Content-Length and builds its requests itself, so what a
server does with a chunked body, or with a charset Django cannot decode while it builds the
request, shows only on a real one: gunicorn (as deployed) and Django's own threaded server.
"""

import base64
import json
from xml.etree import ElementTree

import pytest

from tests.deploy.servers import chunked, http, request_bytes, start_app, stop
from tests.rsgateway.api import TOPUP, body
from tests.wallets.conftest import make_balance, snapshot
from wallets.exceptions import Result

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("gunicorn"), workers=2)
    yield server
    stop(server.process)


def mtx(reply) -> dict:
    if reply.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(reply.body)
    else:
        assert reply.headers.get("content-type", "").startswith("application/xml"), reply
        root = ElementTree.fromstring(reply.body)
        data = {"$": root.tag, **{child.tag: child.text for child in root}}
    data["Result"] = int(data["Result"])
    return data


def prefix(binding: str) -> str:
    return "/rsgateway/data/v3" if binding == "xml" else "/rsgateway/data/json"


def topup_path(app, binding: str, query: str = "") -> str:
    return f"{prefix(binding)}/subscription/{app.ref}/wallet/{app.resource_id}/topup{query}"


def amount(app) -> str:
    path = f"/rsgateway/data/json/subscription/{app.ref}/wallet/{app.resource_id}"
    reply = http(app.port, request_bytes("GET", path, headers=app.auth()))
    assert reply.status == 200, reply
    return json.loads(reply.body)["BalanceArray"][0]["Amount"]


def content_type(binding: str, charset: str | None = None) -> str:
    kind = "application/xml" if binding == "xml" else "application/json"
    return f"{kind}; charset={charset}" if charset else kind


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_a_chunked_body_is_read_and_credits_once(app, binding):
    before = amount(app)
    data = body(binding, TOPUP, {"Amount": "2.00", "Voucher": f"CHUNKED-{binding}"}).encode()
    headers = {
        **app.auth(),
        "Content-Type": content_type(binding),
        "Transfer-Encoding": "chunked",
    }

    reply = http(
        app.port,
        request_bytes("PUT", topup_path(app, binding), headers=headers) + chunked(data, 7),
    )

    assert (reply.status, mtx(reply)["Result"]) == (200, Result.OK), reply
    assert float(amount(app)) == float(before) + 2


@pytest.mark.parametrize("binding", ["xml", "json"])
def test_a_chunked_body_over_64_kib_is_refused_and_changes_nothing(app, binding):
    before = amount(app)
    fields = {"Amount": "2.00", "Voucher": "V" * LIMIT}
    headers = {
        **app.auth(),
        "Content-Type": content_type(binding),
        "Transfer-Encoding": "chunked",
    }

    reply = http(
        app.port,
        request_bytes("PUT", topup_path(app, binding), headers=headers)
        + chunked(body(binding, TOPUP, fields).encode(), 8192),
    )

    data = mtx(reply)
    assert (reply.status, data["Result"]) == (400, Result.MALFORMED), reply
    assert "64 KiB" in data["ResultText"]
    assert amount(app) == before


@pytest.mark.parametrize("encoding", ["x-unknown", "rot13", "hex"])
def test_an_xml_encoding_we_cannot_read_is_minus_1_not_a_crash(app, encoding):
    before = amount(app)
    data = f'<?xml version="1.0" encoding="{encoding}"?>' + body(
        "xml", TOPUP, {"Amount": "2.00", "Voucher": f"ENC-{encoding}"}
    )
    headers = {**app.auth(), "Content-Type": "application/xml"}

    reply = http(
        app.port,
        request_bytes("PUT", topup_path(app, "xml"), body=data.encode(), headers=headers),
    )

    assert (reply.status, mtx(reply)["Result"]) == (400, Result.MALFORMED), reply
    assert amount(app) == before


@pytest.mark.parametrize("binding", ["xml", "json"])
@pytest.mark.parametrize("charset", ["rot13", "idna", "x-unknown"])
def test_a_charset_we_cannot_read_is_minus_1_even_with_a_query_string(app, binding, charset):
    """Django decodes the query string under the body's charset while it builds the request:
    `rot13` or `idna` crashed there, before any handler, and gunicorn answered its own page."""
    before = amount(app)
    data = body(binding, TOPUP, {"Amount": "2.00", "Voucher": f"CS-{charset}"}).encode()
    headers = {**app.auth(), "Content-Type": content_type(binding, charset)}

    reply = http(
        app.port,
        request_bytes("PUT", topup_path(app, binding, "?a=%41%ff"), body=data, headers=headers),
    )

    assert (reply.status, mtx(reply)["Result"]) == (400, Result.MALFORMED), reply
    assert amount(app) == before


def test_other_pages_ignore_a_charset_that_decodes_nothing(app):
    headers = {"Content-Type": "text/plain; charset=rot13"}

    reply = http(app.port, request_bytes("GET", "/panel/login/?next=%2Fpanel%2F", headers=headers))

    assert reply.status == 200, reply
    assert b'name="next" value="/panel/"' in reply.body


def test_a_query_string_the_api_does_not_read_cannot_crash_the_request(app):
    """Over Django's 1,000 fields, with a charset given: Django read the query string while it
    built the request and gunicorn answered its own page; nothing here reads it."""
    before = amount(app)
    query = "?" + "&".join("a" * 1100)
    data = body("xml", TOPUP, {"Amount": "2.00", "Voucher": "FIELDS"}).encode()
    headers = {**app.auth(), "Content-Type": "application/xml; charset=utf-8"}

    reply = http(
        app.port,
        request_bytes("PUT", topup_path(app, "xml", query), body=data, headers=headers),
    )

    assert (reply.status, mtx(reply)["Result"]) == (200, Result.OK), reply
    assert float(amount(app)) == float(before) + 2


@pytest.mark.django_db(transaction=True)
def test_a_server_that_cannot_end_a_chunked_body_asks_for_a_content_length(
    live_server, external_client
):
    """Django's own server (runserver, live_server) leaves the chunk framing in the socket:
    reading on would wait for bytes that never come, so the API refuses instead."""
    balance = make_balance(amount="5.00")
    before = snapshot()
    port = int(live_server.url.rsplit(":", 1)[1])
    path = (
        f"/rsgateway/data/v3/subscription/ExternalId+{balance.wallet.subscription.external_id}"
        f"/wallet/{balance.resource_id}/topup"
    )
    data = body("xml", TOPUP, {"Amount": "2.00", "Voucher": "LIVE"}).encode()
    token = base64.b64encode(b"vms-test:secret").decode()
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/xml",
        "Transfer-Encoding": "chunked",
    }

    reply = http(port, request_bytes("PUT", path, headers=headers) + chunked(data))

    assert (reply.status, mtx(reply)["Result"]) == (411, Result.MALFORMED), reply
    assert snapshot() == before
