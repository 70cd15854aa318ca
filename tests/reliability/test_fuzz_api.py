"""Hostile input against the REST gateway (docs/rest-api.md), both bindings, hypothesis-driven.

For the top-up (card and external voucher mode) and adjustment endpoints, in XML
(`/rsgateway/data/v3/…`) and JSON (`/rsgateway/data/json/…`): random bytes, valid bodies with
fields dropped, duplicated, renamed or given hostile values (huge numbers, exponents, NaN,
negative zero, unicode digits, control characters, 10,000-character strings), wrong root
elements, deep nesting, entity bombs and external entities, a 10 MB body, wrong content types
and methods, junk references and resource ids.

Every reply must be a well-formed `MtxResponse` in the request's binding whose Result is one of
the table's non-zero codes with its HTTP status (an internal error, Result 1, fails the test),
nothing in the database may change (each input runs in its own rolled-back savepoint, compared
before and after), and no PIN is echoed. `pytest -s` prints the inputs tried per target; set
`TOPUP_FUZZ_EXAMPLES` for a longer run.
"""

import json
import logging
import re
from decimal import Decimal
from urllib.parse import quote

import pytest
from defusedxml import ElementTree
from hypothesis import assume, given
from hypothesis import strategies as st

from cards import pins
from tests.reliability.fuzz_support import (
    ACCESS_NUMBER,
    ARABIC_INDIC,
    CARD_AMOUNT,
    CONTROL,
    DEVANAGARI,
    EXTERNAL_ID,
    FULLWIDTH,
    MAIN_RESOURCE_ID,
    METER_RESOURCE_ID,
    PERIODIC_RESOURCE_ID,
    Tally,
    assert_no_pin_in,
    each_example_rolled_back,
    full_state,
    fuzz_settings,
    fuzz_world,
    hostile_text,
)
from tests.wallets.conftest import basic_auth
from wallets.models import LedgerEntry

pytestmark = pytest.mark.django_db

TOPUP = "MtxRequestSubscriberTopupBalance"
ADJUST = "MtxRequestSubscriberAdjustBalance"
CONTENT_TYPE = {"xml": "application/xml", "json": "application/json"}
PREFIX = {"xml": "/rsgateway/data/v3", "json": "/rsgateway/data/json"}
# docs/rest-api.md, written out again here rather than imported from the code under test.
# -1 is 400, or 405 for a wrong method and 415 for a wrong content type (DRF's own statuses).
RESULT_HTTP = {
    -1: {400, 405, 415},
    -4: {401},
    -7: {403},
    11: {404},
    19: {409},
    10: {422},
    40: {422},
    41: {422},
    -17: {422},
}
BODY_FIELDS = {
    TOPUP: ["Amount", "Voucher", "EndTime", "StartTime"],
    ADJUST: ["AdjustType", "Amount", "Reason", "StartTime", "EndTime"],
}
# (name, request root, operation path, API client of the world)
TARGETS = {
    "topup-card": (TOPUP, "topup", "card_client"),
    "topup-external": (TOPUP, "topup", "external_client"),
    "adjustment": (ADJUST, "adjustment", "external_client"),
}


@pytest.fixture
def world(db, settings):
    # Each refused card code counts towards the API client's lockout: keep the lock out of the
    # way so every input reaches the code it is aimed at (test_lockout*.py prove the lock).
    settings.REDEEM_LOCKOUT_API_FAILURES = 10**9
    return fuzz_world()


@pytest.fixture(autouse=True)
def _quiet_request_log(caplog):
    """Every input is refused on purpose: Django's 4xx warnings would flood the output."""
    caplog.set_level(logging.ERROR, logger="django.request")


@pytest.fixture
def tally(request):
    counter = Tally(request.node.name)
    yield counter
    print(counter.report())


def valid_fields(world, target: str) -> dict[str, str]:
    """A body this target accepts as it is (so that only the mutation can make it fail)."""
    if target == "topup-card":
        return {"Amount": str(CARD_AMOUNT), "Voucher": pins.format_pin(world["pins"]["new"])}
    if target == "topup-external":
        return {"Amount": "25.00", "Voucher": "VMS-7f3a-0001"}
    return {"AdjustType": "1", "Amount": "5.00", "Reason": "goodwill credit"}


# --- building and sending requests ---------------------------------------------------------


def xml_body(root: str, pairs: list[tuple[str, str]]) -> bytes:
    def text(value: str) -> str:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    inner = "".join(f"<{name}>{text(value)}</{name}>" for name, value in pairs)
    # A lone surrogate cannot be UTF-8: it goes out as the invalid bytes a hostile client sends.
    return f"<{root}>{inner}</{root}>".encode("utf-8", "surrogatepass")


def json_body(root, pairs: list[tuple[str, object]]) -> bytes:
    """JSON object text with duplicates kept (json.dumps of a dict cannot repeat a key)."""
    members = [f'"$": {json.dumps(root)}'] if root is not None else []
    members += [f"{json.dumps(name)}: {json.dumps(value)}" for name, value in pairs]
    return ("{" + ", ".join(members) + "}").encode()


def render(binding: str, root: str, pairs: list[tuple[str, str]]) -> bytes:
    return xml_body(root, pairs) if binding == "xml" else json_body(root, pairs)


def wallet_url(binding, *, owner="subscription", ref=None, resource_id=MAIN_RESOURCE_ID, op):
    ref = f"ExternalId+{EXTERNAL_ID}" if ref is None else ref
    return f"{PREFIX[binding]}/{owner}/{ref}/wallet/{resource_id}/{op}"


def send(client, world, target, binding, body: bytes, *, url=None, method="PUT", **kwargs):
    root, op, who = TARGETS[target]
    content_type = kwargs.pop("content_type", CONTENT_TYPE[binding])
    return client.generic(
        method,
        url or wallet_url(binding, op=op),
        body,
        content_type=content_type,
        **basic_auth(world[who].username),
        **kwargs,
    )


# --- what every reply must be ------------------------------------------------------------------


def mtx_reply(response, binding: str) -> dict:
    """The reply as a dict; fails unless it is a well-formed MtxResponse in `binding`."""
    content_type = response["Content-Type"]
    if binding == "json":
        assert content_type.startswith("application/json"), content_type
        data = json.loads(response.content.decode("utf-8"))
        assert isinstance(data, dict) and data.get("$") == "MtxResponse", data
        assert set(data) == {"$", "RouteId", "Result", "ResultText"}, data
        assert type(data["Result"]) is int, data
    else:
        assert content_type.startswith("application/xml"), content_type
        root = ElementTree.fromstring(response.content)
        assert root.tag == "MtxResponse", root.tag
        assert [child.tag for child in root] == ["RouteId", "Result", "ResultText"]
        assert all(len(child) == 0 for child in root)
        data = {"$": root.tag, **{child.tag: child.text or "" for child in root}}
        assert re.fullmatch(r"-?[0-9]+", data["Result"]), data
        data["Result"] = int(data["Result"])
    assert isinstance(data["ResultText"], str) and data["ResultText"].strip(), data
    return data


def assert_refused(response, binding: str, *, result=None, status=None) -> dict:
    data = mtx_reply(response, binding)
    code = data["Result"]
    assert code != 0, f"accepted: {data}"
    assert code in RESULT_HTTP, f"Result {code} is not a refusal of the table: {data}"
    assert response.status_code in RESULT_HTTP[code], (response.status_code, data)
    if result is not None:
        assert code == result, data
    if status is not None:
        assert response.status_code == status, (response.status_code, data)
    return data


def outcome(response) -> str:
    match = re.search(rb'<Result>(-?\d+)</Result>|"Result": (-?\d+)', response.content)
    result = (match.group(1) or match.group(2)).decode() if match else "?"
    return f"{response.status_code}/{result}"


def check_refused(client, world, target, binding, body, tally, *, result=None, status=None, **kw):
    """Send one hostile input inside a rolled-back savepoint and check the property."""
    with each_example_rolled_back():
        before = full_state()
        response = send(client, world, target, binding, body, **kw)
        tally.add(outcome(response))
        if kw.get("method") == "HEAD":
            assert response.status_code == 405  # a HEAD reply has no body
        else:
            assert_refused(response, binding, result=result, status=status)
            assert_no_pin_in(response.content.decode("utf-8", "replace"), *world["pins"].values())
        assert full_state() == before


# --- strategies ------------------------------------------------------------------------------

_AMOUNT_LIKE = re.compile(r"\+?[0-9]+(\.[0-9]+)?")


def could_be_an_amount(text: str) -> bool:
    """Text that a lenient reader might fairly take for a positive amount: left out of the
    'must be refused' pools (test_any_value_is_either_applied_exactly_or_refused covers it)."""
    stripped = text.strip()
    return bool(_AMOUNT_LIKE.fullmatch(stripped)) and Decimal(stripped) > 0


NON_WHITESPACE_CONTROL = "".join(c for c in CONTROL if not c.isspace())
BAD_TIMES = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "2000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "٢٠٣٠-٠١-٠١T00:00:00Z",
    "２０３０-０１-０１T00:00:00Z",
    "P",
    "PT",
    "P1",
    "-P400D",
    "P99999999D",
    "P9999Y",
    "P1e5D",
    "PNaND",
    "P-0D",
    "1e5",
    "NaN",
    "",
    "now",
    "9" * 70,
]

# Refused as an EndTime of the main balance (ends in 300 days) and as a StartTime (started 10
# days ago; only earlier starts and absolute values are allowed).
BAD_END_TIMES = BAD_TIMES
BAD_START_TIMES = [t for t in BAD_TIMES if t != "2000-01-01T00:00:00Z"] + ["2999-01-01T00:00:00Z"]


def never_valid(target: str, field: str) -> st.SearchStrategy[str]:
    """Values this field can never take, whatever the rest of the body."""
    if field == "Amount":
        return hostile_text().filter(lambda v: not could_be_an_amount(v))
    if field == "AdjustType":
        return hostile_text().filter(lambda v: v.strip() not in ("1", "2"))
    if field == "Reason":
        return st.one_of(
            st.sampled_from(["", " ", "\t\n "]),
            st.text(min_size=256, max_size=400).filter(lambda v: len(v.strip()) > 255),
            st.builds(
                lambda a, c, b: a + c + b,
                st.text(max_size=20),
                st.sampled_from(NON_WHITESPACE_CONTROL),
                st.text(max_size=20),
            ),
        )
    if field == "Voucher" and target == "topup-card":
        # Anything but the redeemable card's PIN: junk, or that PIN in other digits.
        return st.one_of(
            hostile_text(),
            st.sampled_from([ARABIC_INDIC, FULLWIDTH, DEVANAGARI]).map(
                lambda table: NEW_PIN[0].translate(table)
            ),
        )
    if field == "Voucher":
        return st.one_of(
            st.sampled_from(["", " "]),
            st.text(min_size=65, max_size=300).filter(lambda v: len(v.strip()) > 64),
            st.builds(
                lambda a, c, b: a + c + b,
                st.text(max_size=20),
                st.sampled_from(NON_WHITESPACE_CONTROL),
                st.text(max_size=20),
            ),
        )
    if field == "EndTime":
        return st.one_of(st.sampled_from(BAD_END_TIMES), hostile_text())
    if field == "StartTime":
        return st.one_of(st.sampled_from(BAD_START_TIMES), hostile_text())
    return hostile_text()  # a renamed or unknown field: refused whatever its value


NEW_PIN: list[str] = []  # the redeemable card's PIN, set by the test that needs it
OTHER_ROOTS = [
    TOPUP,
    ADJUST,
    "MtxResponse",
    "MtxRequestSubscriberModify",
    "mtxrequestsubscribertopupbalance",
    "root",
]


@st.composite
def broken_body(draw, target: str, binding: str, base: dict[str, str]) -> bytes:
    """A valid body with 1 to 3 mutations, at least one of which makes it invalid."""
    root = TARGETS[target][0]
    pairs = list(base.items())
    allowed = BODY_FIELDS[root]
    kinds = draw(
        st.lists(
            st.sampled_from(
                ["drop", "duplicate", "rename", "unknown", "root", "start", "end", "nest"]
                + ["value"] * 4
            ),
            min_size=1,
            max_size=3,
        )
    )
    for kind in kinds:
        if kind == "drop" and pairs:
            # Every field of the base body is required (a validity change needs a time field).
            del pairs[draw(st.integers(0, len(pairs) - 1))]
        elif kind == "duplicate" and pairs:
            name, _ = pairs[draw(st.integers(0, len(pairs) - 1))]
            pairs.append((name, draw(st.one_of(st.just(base.get(name, "1")), hostile_text()))))
        elif kind == "rename" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            name, value = pairs[index]
            new = draw(
                st.one_of(
                    st.sampled_from([name.lower(), name.upper(), f" {name}", f"{name}s", "$"]),
                    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,30}\Z"),
                ).filter(lambda n, name=name: n != name)
            )
            if new in allowed and new not in dict(pairs):
                new += "X"  # a rename onto another real field would be a different request
            pairs[index] = (new, value)
        elif kind == "unknown":
            name = draw(
                st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,30}\Z").filter(lambda n: n not in allowed)
            )
            pairs.append((name, draw(hostile_text(20))))
        elif kind == "value" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            name, _ = pairs[index]
            pairs[index] = (name, draw(never_valid(target, name)))
        elif kind == "root":
            root = draw(st.sampled_from(OTHER_ROOTS).filter(lambda r, root=root: r != root))
        elif kind == "start":
            if TARGETS[target][0] == TOPUP:  # rule: a top-up never changes StartTime (40)
                pairs.append(("StartTime", draw(st.sampled_from(["2020-01-01T00:00:00Z", "-P1D"]))))
            else:
                pairs.append(("StartTime", draw(never_valid(target, "StartTime"))))
        elif kind == "end":
            pairs.append(("EndTime", draw(st.sampled_from(BAD_END_TIMES))))
        elif kind == "nest" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            name, value = pairs[index]
            if binding == "xml":
                return render_nested_xml(root, pairs, index)
            pairs[index] = (name, draw(st.sampled_from([[value], {"$": value}, None, True])))
    # A duplicate whose original was then dropped gives the valid body back: not a mutation.
    assume(
        root != TARGETS[target][0] or sorted(map(repr, pairs)) != sorted(map(repr, base.items()))
    )
    body = render(binding, root, pairs)
    if binding == "json" and draw(st.booleans()):
        body = body.replace(b'"$"', b'"$ "', draw(st.integers(0, 1)))  # a mangled type key
    return body


def render_nested_xml(root, pairs, index) -> bytes:
    inner = "".join(
        f"<{n}><v>{v}</v></{n}>" if i == index else f"<{n}>{v}</{n}>"
        for i, (n, v) in enumerate(pairs)
    )
    return f"<{root}>{inner}</{root}>".encode("utf-8", "surrogatepass")


# --- 1. random and mutated bodies --------------------------------------------------------------

BINDINGS = ["xml", "json"]


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_random_bytes_are_refused_as_malformed(client, world, tally, target, binding):
    @fuzz_settings(12)
    @given(body=st.one_of(st.binary(max_size=3000), st.text(max_size=3000).map(str.encode)))
    def run(body):
        check_refused(client, world, target, binding, body, tally, result=-1, status=400)

    run()


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_mutated_valid_bodies_are_refused_and_change_nothing(client, world, tally, target, binding):
    NEW_PIN[:] = [world["pins"]["new"]]
    base = valid_fields(world, target)

    # The unmutated body is accepted: a refusal below is the mutation's doing.
    with each_example_rolled_back():
        assert (
            mtx_reply(
                send(
                    client,
                    world,
                    target,
                    binding,
                    render(binding, TARGETS[target][0], list(base.items())),
                ),
                binding,
            )["Result"]
            == 0
        )

    @fuzz_settings(30)
    @given(body=broken_body(target, binding, base))
    def run(body):
        check_refused(client, world, target, binding, body, tally)

    run()


# --- 2. any value in any field: applied exactly as sent, or refused with nothing changed --------


def any_value() -> st.SearchStrategy[str]:
    return st.one_of(
        hostile_text(),
        st.sampled_from(["25", "25.0", "0025.00", " 25.00 ", "25.00\u00a0", "\u200925", "1", "2"]),
        st.sampled_from(BAD_TIMES + ["P1D", "P4W", "2031-01-01T00:00:00Z", "2001-01-01T00:00:00Z"]),
    )


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_any_value_is_either_applied_exactly_or_refused(client, world, tally, target, binding):
    """Values a lenient reader might accept (whitespace around a number, leading zeros, a free
    text reason): an accepted request changed exactly what it said, a refused one nothing."""
    root = TARGETS[target][0]
    base = valid_fields(world, target)

    @fuzz_settings(15)
    @given(
        field=st.sampled_from(BODY_FIELDS[root]),
        value=any_value(),
    )
    def run(field, value):
        fields = {**base, field: value}
        with each_example_rolled_back():
            before = full_state()
            entries = set(LedgerEntry.objects.values_list("pk", flat=True))
            response = send(
                client, world, target, binding, render(binding, root, list(fields.items()))
            )
            tally.add(outcome(response))
            data = mtx_reply(response, binding)
            assert_no_pin_in(response.content.decode(), *world["pins"].values())
            if data["Result"] != 0:
                assert_refused(response, binding)
                assert full_state() == before
                return
            assert response.status_code == 200
            new = list(LedgerEntry.objects.exclude(pk__in=entries))
            if field in ("EndTime", "StartTime") and not new:
                return  # a validity change alone, within the rules (test_rules.py)
            (entry,) = new
            amount = Decimal(fields["Amount"].strip())
            assert fields["Amount"].strip().isascii()
            sign = -1 if fields.get("AdjustType", "1").strip() == "2" else 1
            assert entry.amount == sign * amount
            if target == "topup-external":
                assert entry.voucher == fields["Voucher"].strip()

    run()


# --- 3. parser attacks: nesting, entities, size --------------------------------------------------


@st.composite
def deeply_nested(draw, binding: str, root: str) -> bytes:
    depth = draw(st.one_of(st.integers(2, 100), st.integers(100, 200_000)))
    where = draw(st.sampled_from(["root", "field"]))
    if binding == "xml":
        nest = "<a>" * depth + "1" + "</a>" * depth
        inner = nest if where == "root" else f"<Amount>{nest}</Amount>"
        return f"<{root}>{inner}</{root}>".encode()
    nest = "[" * depth + '"1"' + "]" * depth
    if draw(st.booleans()):
        nest = '{"a": ' * depth + '"1"' + "}" * depth
    if where == "root":
        return nest.encode()
    return f'{{"$": "{root}", "Amount": {nest}}}'.encode()


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", ["topup-card", "adjustment"])
def test_deep_nesting_is_refused(client, world, tally, target, binding):
    @fuzz_settings(6)
    @given(body=deeply_nested(binding, TARGETS[target][0]))
    def run(body):
        check_refused(client, world, target, binding, body, tally, result=-1, status=400)

    run()


@st.composite
def entity_attack(draw, root: str) -> bytes:
    """Billion laughs (nested entities), quadratic blow-up, external entities and DTDs."""
    field = draw(st.sampled_from(["Amount", "Voucher", "Reason"]))
    kind = draw(
        st.sampled_from(["laughs", "quadratic", "external", "parameter", "dtd", "xinclude"])
    )
    if kind == "laughs":
        levels, fan = draw(st.integers(2, 12)), draw(st.integers(2, 10))
        ents = ['<!ENTITY l0 "lol">'] + [
            f'<!ENTITY l{i} "{f"&l{i - 1};" * fan}">' for i in range(1, levels)
        ]
        dtd, ref = "".join(ents), f"&l{levels - 1};"
    elif kind == "quadratic":
        dtd, ref = f'<!ENTITY a "{"x" * draw(st.integers(1, 20_000))}">', "&a;" * 200
    elif kind == "external":
        target = draw(
            st.sampled_from(
                [
                    "file:///etc/passwd",
                    "file:///proc/self/environ",
                    "http://127.0.0.1:9/x",
                    "/etc/hosts",
                ]
            )
        )
        dtd, ref = f'<!ENTITY x SYSTEM "{target}">', "&x;"
    elif kind == "parameter":
        dtd, ref = '<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;', "1"
    elif kind == "xinclude":
        return (
            f'<{root} xmlns:xi="http://www.w3.org/2001/XInclude"><{field}>'
            f'<xi:include href="file:///etc/passwd" parse="text"/></{field}></{root}>'
        ).encode()
    else:
        dtd, ref = "", "1"
    doctype = (
        f"<!DOCTYPE {root} [{dtd}]>"
        if kind != "dtd"
        else (f'<!DOCTYPE {root} SYSTEM "file:///etc/passwd">')
    )
    return (f'<?xml version="1.0"?>{doctype}<{root}><{field}>{ref}</{field}></{root}>').encode()


@pytest.mark.parametrize("target", list(TARGETS))
def test_entity_bombs_and_external_entities_are_refused(client, world, tally, target):
    passwd = open("/etc/passwd").read().split("\n", 1)[0]  # noqa: SIM115 - one line, for the check

    @fuzz_settings(10)
    @given(body=entity_attack(TARGETS[target][0]))
    def run(body):
        with each_example_rolled_back():
            before = full_state()
            response = send(client, world, target, "xml", body)
            tally.add(outcome(response))
            assert_refused(response, "xml", result=-1, status=400)
            assert (
                passwd not in response.content.decode()
                and "lollol" not in response.content.decode()
            )
            assert full_state() == before

    run()


@pytest.mark.parametrize("binding", BINDINGS)
def test_a_10_mb_body_is_refused_without_being_read(client, world, binding):
    valid = render(binding, TOPUP, [("Amount", "25.00"), ("Voucher", "VMS-big")])
    filler = b" " * (10 * 1024 * 1024)
    bodies = {
        "padding after a valid body": valid + filler,
        "a 10 MB field": render(binding, TOPUP, [("Amount", "25.00"), ("Voucher", "V" * 10**7)]),
    }
    for body in bodies.values():
        with each_example_rolled_back():
            before = full_state()
            response = send(client, world, "topup-external", binding, body)
            data = assert_refused(response, binding, result=-1, status=400)
            assert "64 KiB" in data["ResultText"]
            assert full_state() == before
    # A client that understates Content-Length is cut at what it declared: never a credit.
    with each_example_rolled_back():
        before = full_state()
        response = send(
            client, world, "topup-external", binding, valid + filler, CONTENT_LENGTH="20"
        )
        assert_refused(response, binding, result=-1, status=400)
        assert full_state() == before


# --- 4. the HTTP envelope: content types, methods, references, resource ids ---------------------

ACCEPTED_MEDIA = {"application/xml", "text/xml", "application/json"}


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


content_types = st.one_of(
    st.sampled_from(
        [
            "",
            "text/plain",
            "text/html",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            "application/xml-dtd",
            "application/soap+xml",
            "application/problem+json",
            "application/jsonx",
            "json",
            "xml",
            "application/ json",
            "text/json",
            "application/javascript",
            "image/svg+xml",
        ]
    ),
    st.from_regex(r"\A[a-z]{1,12}/[a-z0-9.+-]{1,20}(; ?charset=[a-z0-9-]{1,10})?\Z"),
)


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_a_valid_body_under_a_wrong_content_type_is_415(client, world, tally, target, binding):
    root = TARGETS[target][0]
    body = render(binding, root, list(valid_fields(world, target).items()))

    @fuzz_settings(6)
    @given(content_type=content_types)
    def run(content_type):
        other = {"xml": {"application/json"}, "json": {"application/xml", "text/xml"}}[binding]
        assume(media_type(content_type) not in ACCEPTED_MEDIA - other)
        assume("*" not in content_type)
        check_refused(
            client,
            world,
            target,
            binding,
            body,
            tally,
            content_type=content_type,
            result=-1,
            status=415,
        )

    run()


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_a_valid_body_with_a_wrong_method_is_405(client, world, tally, target, binding):
    root = TARGETS[target][0]
    body = render(binding, root, list(valid_fields(world, target).items()))

    @fuzz_settings(5)
    @given(
        method=st.one_of(
            st.sampled_from(["GET", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD"]),
            st.from_regex(r"\A[A-Z]{3,10}\Z").filter(lambda m: m != "PUT"),
        )
    )
    def run(method):
        check_refused(
            client, world, target, binding, body, tally, method=method, result=-1, status=405
        )

    run()


junk = st.one_of(hostile_text(40), st.text(min_size=1, max_size=300))


@st.composite
def wrong_place(draw, world) -> tuple[str, str, str]:
    """(owner, ref, resource id) naming no balance of the world (or not a valid reference)."""
    subscription = world["main"].wallet.subscription
    owner = draw(st.sampled_from(["subscription", "subscriber"]))
    known_ids = {subscription.pk} if owner == "subscription" else {subscription.subscriber_id}
    kind = draw(st.sampled_from(["objectid", "external", "access", "term", "resource"]))
    ref, resource_id = f"ExternalId+{EXTERNAL_ID}", str(MAIN_RESOURCE_ID)
    if owner == "subscriber":
        ref = f"AccessNumber+{ACCESS_NUMBER}"
    if kind == "objectid":
        ref = draw(st.one_of(junk, ascii_number()))
        assume(not (ref.isascii() and ref.isdigit() and int(ref[-30:]) in known_ids))
    elif kind == "external":
        ref = "ExternalId+" + draw(junk.filter(lambda v: v != EXTERNAL_ID))
    elif kind == "access":
        ref = "AccessNumber+" + draw(junk.filter(lambda v: v != ACCESS_NUMBER))
    elif kind == "term":
        term = draw(
            st.one_of(
                st.sampled_from(["externalid", "EXTERNALID", "Imsi", "Msisdn", "", "ObjectId"]),
                junk,
            )
        )
        assume(term not in ("ExternalId", "AccessNumber"))
        ref = f"{term}+{EXTERNAL_ID}"
    else:
        resource_id = draw(st.one_of(junk, ascii_number()))
        assume(
            not (
                resource_id.isascii()
                and resource_id.isdigit()
                and int(resource_id[-30:])
                in (MAIN_RESOURCE_ID, PERIODIC_RESOURCE_ID, METER_RESOURCE_ID)
                and len(resource_id) <= 19
            )
        )
    assume(ref and resource_id)

    def escaped(text, safe):  # a lone surrogate goes out as the invalid UTF-8 bytes it makes
        return quote(text.encode("utf-8", "surrogatepass"), safe=safe)

    return owner, escaped(ref, "+"), escaped(resource_id, "")


def ascii_number() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 10**40).map(str),
        st.integers(0, 30).map(lambda n: "0" * n + "12"),
        st.sampled_from(["-1", "+12", "12.0", "1e1", "0x0c", "9" * 19, "9" * 20, "2" * 64]),
    )


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_junk_references_and_resource_ids_find_nothing(client, world, tally, target, binding):
    root, op, _ = TARGETS[target]
    body = render(binding, root, list(valid_fields(world, target).items()))

    @fuzz_settings(12)
    @given(place=wrong_place(world))
    def run(place):
        owner, ref, resource_id = place
        url = f"{PREFIX[binding]}/{owner}/{ref}/wallet/{resource_id}/{op}"
        check_refused(client, world, target, binding, body, tally, url=url)

    run()


# --- 5. what the fuzz found (fixed), pinned as plain examples ----------------------------------

FOUND = [
    # An absolute time whose UTC value falls outside years 1-9999: OverflowError, then a 500
    # (SQLite) or a DataError from PostgreSQL ("timestamp too large").
    ("topup-card", [("EndTime", "9999-12-31T23:59:59-05:00")], 10),
    ("adjustment", [("EndTime", "9999-12-31T23:59:59-05:00")], 10),
    ("adjustment", [("StartTime", "0001-01-01T00:00:00+05:00")], 10),
    # A NUL in the reason: stored as is on SQLite, a 500 on PostgreSQL ("cannot contain NUL").
    ("adjustment", [("Reason", "good\u0000will")], 10),
    ("adjustment", [("Reason", "line\nbreak\u001b[31m")], 10),
    # Unicode digits in a time: Django's parse_datetime took ٢٠٣٠-٠١-٠١ for 2030-01-01, and
    # durations matched \d (P٤W was four weeks), while amounts took ASCII digits only.
    ("topup-external", [("EndTime", "٢٠٣٠-٠١-٠١T00:00:00Z")], 10),
    ("adjustment", [("EndTime", "P٤W")], 10),
    ("adjustment", [("EndTime", "２０３０-０１-０１T00:00:00Z")], 10),
]


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize("target, extra, result", FOUND)
def test_found_by_the_fuzz_is_refused(client, world, target, extra, result, binding):
    if binding == "xml" and any("\u0000" in v or "\u001b" in v for _, v in extra):
        result = -1  # XML cannot carry these characters at all: the body is not well-formed
    fields = {**valid_fields(world, target), **dict(extra)}
    with each_example_rolled_back():
        before = full_state()
        body = render(binding, TARGETS[target][0], list(fields.items()))
        assert_refused(send(client, world, target, binding, body), binding, result=result)
        assert full_state() == before


@pytest.mark.parametrize("binding", BINDINGS)
def test_an_object_id_of_5000_digits_finds_nothing(client, world, binding):
    """Found by the long fuzz run: int() refuses more than 4,300 digits (ValueError, a 500)."""
    url = wallet_url(binding, ref="9" * 5000, op="topup")
    body = render(binding, TOPUP, list(valid_fields(world, "topup-external").items()))
    with each_example_rolled_back():
        before = full_state()
        response = send(client, world, "topup-external", binding, body, url=url)
        assert_refused(response, binding, result=11, status=404)
        assert full_state() == before


@pytest.mark.parametrize("binding", BINDINGS)
@pytest.mark.parametrize(
    "ref", ["ExternalId+%00", "AccessNumber+555%00", "ExternalId+fuzz-sub-7f3a%00"]
)
def test_a_nul_in_a_reference_finds_nothing(client, world, binding, ref):
    """Found by the fuzz on PostgreSQL: a DataError ("cannot contain NUL"), so a 500."""
    url = wallet_url(binding, ref=ref, op="topup")
    body = render(binding, TOPUP, list(valid_fields(world, "topup-external").items()))
    with each_example_rolled_back():
        before = full_state()
        response = send(client, world, "topup-external", binding, body, url=url)
        assert_refused(response, binding, result=11, status=404)
        assert full_state() == before


def test_a_lone_surrogate_in_json_is_malformed(client, world):
    body = (
        b'{"$": "MtxRequestSubscriberAdjustBalance", "AdjustType": "1", "Amount": "5.00", '
        b'"Reason": "x\\ud800"}'
    )
    with each_example_rolled_back():
        before = full_state()
        assert_refused(send(client, world, "adjustment", "json", body), "json", result=-1)
        assert full_state() == before
