"""The OpenAPI description of /rsgateway/, written by hand and served by the project.

`/rsgateway/openapi.json` for tools, `/rsgateway/docs/` for people (no JavaScript, no CDN).
Hand-written rather than generated from serializers (docs/rest-api.md, "The OpenAPI document"):
the views have no DRF serializers to read, and what a generator cannot see (one media type per
binding, the "$" key, the XML shapes, the Result of each status) is most of the document. It is
built from the code's own tables (parsers, renderer, HTTP_STATUS, REQUEST_FIELDS), and
tests/rsgateway/test_openapi.py holds it to the real replies.
"""

from dataclasses import dataclass

from django.http import JsonResponse
from django.template.response import TemplateResponse

from cards.exceptions import CardDormant
from wallets.exceptions import Result

from .errors import MAX_REQUEST_ID, mtx_data
from .renderers import renderer_for
from .serializers import ADJUST, AMOUNT_PATTERN, TOPUP
from .views import MtxView

RESPONSE = "MtxResponse"
WALLET = "MtxResponseWallet"
BALANCE_INFO = "MtxBalanceInfo"

# Each reply the API gives: (HTTP status, Result, when, ResultText of its example). The texts are
# the server's own. Results with several statuses are listed once per status.
REPLIES = [
    (200, Result.OK, "Success.", "OK"),
    (
        400,
        Result.MALFORMED,
        "Body not well-formed, wrong root element, unknown or repeated field, a JSON number in a "
        "text field, DTD or entity, body over 64 KiB or empty; an XML encoding or charset the API "
        "cannot read; a Host header not allowed.",
        "Unknown field 'Bonus'.",
    ),
    (
        411,
        Result.MALFORMED,
        "A chunked body on a server that cannot tell where it ends: send a Content-Length.",
        "Send the body with a Content-Length.",
    ),
    (
        415,
        Result.MALFORMED,
        "A Content-Type this binding does not read.",
        'Unsupported media type "text/plain" in request.',
    ),
    (401, Result.UNAUTHENTICATED, "No or bad credentials, inactive user.", "Invalid token."),
    (
        403,
        Result.FORBIDDEN,
        "Authenticated but not allowed (including reseller-scoped staff users).",
        "You do not have permission to do this.",
    ),
    (
        429,
        Result.FORBIDDEN,
        "Too many requests from this client, too many wrong credentials from this address, or "
        "card redemption locked after wrong PINs: retry after Retry-After seconds.",
        "Request was throttled. Expected available in 2 seconds.",
    ),
    (
        404,
        Result.NOT_FOUND,
        "Subscription, subscriber, balance or card voucher not found.",
        "No voucher matches this code.",
    ),
    (
        409,
        Result.ALREADY_REDEEMED,
        "Voucher already redeemed or reference already used; a reversed top-up retried.",
        "This voucher has already been used.",
    ),
    (
        422,
        Result.BAD_DATA,
        "Bad data: Amount ≤ 0 or with too many decimals (T1, T6), missing Voucher (T2), voucher "
        "expired or Amount/currency not the card's, a time rule broken (S1–S7, E1–E9), balance "
        "not live (T3), an ambiguous subscriber, an Idempotency-Key reused for another request.",
        "Amount has more than 2 decimal places. (rule T6)",
    ),
    (
        422,
        Result.NOT_SUPPORTED,
        "Not supported: top-up or adjustment of an amount meter (T5), StartTime in a top-up (T7).",
        "A top-up cannot change the start time. (rule T7)",
    ),
    (422, Result.VOUCHER_BLOCKED, "Voucher (card) blocked.", "This voucher is blocked."),
    (
        422,
        Result.VOUCHER_DORMANT,
        "Voucher (card) dormant: its printed box has not been recorded as delivered yet.",
        CardDormant.default_message,
    ),
    (
        422,
        Result.UNKNOWN_SEARCH_TERM,
        "Unknown search term in {ref}.",
        "Unknown search term 'Imsi': use an ObjectId, ExternalId+value or AccessNumber+value.",
    ),
    (
        500,
        Result.INTERNAL_ERROR,
        "Unexpected server error (logged); safe to retry.",
        "Internal error.",
    ),
    (
        503,
        Result.INTERNAL_ERROR,
        "Busy: the card or balance is held by other work (a background Mass Edit), or on SQLite "
        "the database stayed busy with another write; nothing was done, retry after Retry-After.",
        "The database is busy; try again in a moment.",
    ),
]

# Which replies each operation gives, as (HTTP status, Result).
_EVERY = {
    (200, Result.OK),
    (400, Result.MALFORMED),
    (401, Result.UNAUTHENTICATED),
    (403, Result.FORBIDDEN),
    (429, Result.FORBIDDEN),
    (404, Result.NOT_FOUND),
    (422, Result.BAD_DATA),
    (422, Result.UNKNOWN_SEARCH_TERM),
    (500, Result.INTERNAL_ERROR),
    (503, Result.INTERNAL_ERROR),
}
_WITH_BODY = _EVERY | {
    (411, Result.MALFORMED),
    (415, Result.MALFORMED),
    (422, Result.NOT_SUPPORTED),
}
TOPUP_REPLIES = _WITH_BODY | {
    (409, Result.ALREADY_REDEEMED),
    (422, Result.VOUCHER_BLOCKED),
    (422, Result.VOUCHER_DORMANT),
}
ADJUST_REPLIES = _WITH_BODY
WALLET_REPLIES = _EVERY

# Headers of the replies (components/headers). Django's own 400 and 500 pages under /rsgateway/
# (a Host not allowed, a crash in a middleware) come before any view, so they carry no Allow.
_HEADERS = {
    "X-Request-Id": {
        "description": "The caller's X-Request-Id when it was 1 to 64 printable characters, "
        "else a fresh one; recorded on the ledger entries and balance events the request wrote.",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID},
    },
    "Cache-Control": {
        "description": "Balances and results are one caller's, of one moment: never cached.",
        "required": True,
        "schema": {"const": "no-store"},
    },
    "Allow": {
        "description": "The methods this path serves (a GET path also serves HEAD). Another "
        "method answers 405, Result -1, with this header; OPTIONS is not served.",
        "required": True,
        "schema": {"type": "string", "examples": ["PUT", "GET, HEAD"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with (HTTP Basic is accepted too).",
        "required": True,
        "schema": {"const": "Token"},
    },
}


def _header(name: str, **override) -> dict:
    return {**_HEADERS[name], **override} if override else {"$ref": f"#/components/headers/{name}"}


def _reply_headers(status: int) -> dict:
    headers = {"X-Request-Id": _header("X-Request-Id"), "Cache-Control": _header("Cache-Control")}
    if status in (400, 500):
        headers["Allow"] = _header("Allow", required=False)
    else:
        headers["Allow"] = _header("Allow")
    if status in (429, 503):
        headers["Retry-After"] = _header("Retry-After")
    if status == 401:
        headers["WWW-Authenticate"] = _header("WWW-Authenticate")
    return headers


@dataclass(frozen=True)
class Binding:
    key: str
    prefix: str
    tag: str

    @property
    def suffix(self) -> str:
        return self.key.capitalize()

    @property
    def request_media_types(self) -> list[str]:
        """What the views' parsers read: the rest is 415."""
        return [parser.media_type for parser in MtxView(binding=self.key).get_parsers()]

    @property
    def response_media_type(self) -> str:
        return renderer_for(self.key).media_type

    def schema(self, name: str) -> dict:
        """The name of a message's schema in this binding: the MATRIXX name in JSON."""
        return {"$ref": f"#/components/schemas/{name}{'Xml' if self.key == 'xml' else ''}"}

    def example(self, data: dict):
        """A message as this binding sends it: a JSON value, or the XML text."""
        if self.key == "json":
            return data
        if data["$"] in (TOPUP, ADJUST):  # a request: as a partner writes one
            inner = "".join(f"   <{k}>{v}</{k}>\n" for k, v in data.items() if k != "$")
            return f"<{data['$']}>\n{inner}</{data['$']}>\n"
        return renderer_for("xml").render(data).decode()


XML = Binding("xml", "/rsgateway/data/v3", "XML binding")
JSON = Binding("json", "/rsgateway/data/json", "JSON binding")
JSON_ALIAS = "/rsgateway/data/json/v3"

# The demo data (`manage.py seed_demo`): Rose Orig's subscription and her main balance. Every
# example below succeeds or fails as named there, as the demo API client `vms` (external mode).
DEMO_REF = "AccessNumber+5555555555"
DEMO_RESOURCE_ID = 12
DEMO_CLIENT = "vms"

TOPUP_EXAMPLES = {
    "Result 0": {"$": TOPUP, "Amount": "25.00", "Voucher": "ABC12345679"},
    "Result 10": {"$": TOPUP, "Amount": "25.001", "Voucher": "ABC12345680"},
    "Result 40": {
        "$": TOPUP,
        "Amount": "25.00",
        "Voucher": "ABC12345681",
        "StartTime": "2026-01-01T00:00:00Z",
    },
}
ADJUST_EXAMPLES = {
    "Result 0": {
        "$": ADJUST,
        "AdjustType": "1",
        "Amount": "5.00",
        "Reason": "Goodwill credit, ticket 4711",
    },
    "Result 10": {
        "$": ADJUST,
        "AdjustType": "1",
        "Amount": "5.00",
        "Reason": "Goodwill credit, ticket 4711",
        "EndTime": "P4W",
    },
}
# ResultText of the replies to the examples above, where it is not REPLIES' text.
_ADJUST_TEXTS = {
    (422, Result.BAD_DATA): "The balance has no end time to count from: give an absolute "
    "EndTime. (rule E7)",
    (422, Result.NOT_SUPPORTED): "An amount meter cannot be adjusted.",
}
_WALLET_EXAMPLE = [
    {
        "$": BALANCE_INFO,
        "ResourceId": 12,
        "TemplateName": "Main balance USD",
        "Class": "simple",
        "Currency": "USD",
        "Amount": "40.00",
        "StartTime": "2026-11-08T00:00:00Z",
        "IsLive": True,
        "IsMain": True,
        "IsPrivate": False,
    },
    {
        "$": BALANCE_INFO,
        "ResourceId": 13,
        "TemplateName": "Monthly data MB",
        "Class": "periodic",
        "Currency": "MB",
        "Amount": "1024",
        "StartTime": "2026-11-08T00:00:00Z",
        "EndTime": "2027-11-08T00:00:00Z",
        "IsLive": True,
        "IsMain": False,
        "IsPrivate": False,
        "AvailableAmount": "1024",
        "IntervalStartTime": "2026-11-08T00:00:00Z",
        "IntervalEndTime": "2026-12-08T00:00:00Z",
    },
]


def _responses(binding: Binding, replies: set, *, success: str, texts=None) -> dict:
    by_status: dict[str, dict] = {}
    for status, result, when, text in REPLIES:
        if (status, result) not in replies:
            continue
        text = (texts or {}).get((status, result), text)
        name = f"Result {result}"
        if status == 200:
            extra = {"BalanceArray": _WALLET_EXAMPLE} if success == WALLET else {}
            data = mtx_data(result, text, name=success, **extra)
        else:
            data = mtx_data(result, text)
        entry = by_status.setdefault(
            str(status),
            {
                "description": "",
                "headers": _reply_headers(status),
                "content": {
                    binding.response_media_type: {
                        "schema": binding.schema(success if status == 200 else RESPONSE),
                        "examples": {},
                    }
                },
            },
        )
        entry["description"] = "; ".join(filter(None, [entry["description"], f"{name}: {when}"]))
        entry["content"][binding.response_media_type]["examples"][name] = {
            "summary": when,
            "value": binding.example(data),
        }
    return by_status


def _parameters(*, resource_id: bool) -> list[dict]:
    parameters = [
        {
            "name": "owner",
            "in": "path",
            "required": True,
            "schema": {"$ref": "#/components/schemas/Owner"},
            "example": "subscription",
        },
        {
            "name": "ref",
            "in": "path",
            "required": True,
            "description": "ObjectId (a bare number), ExternalId+value (subscriptions only) or "
            "AccessNumber+value. Another search term is Result -17.",
            "schema": {"type": "string", "minLength": 1},
            "example": DEMO_REF,
        },
    ]
    if resource_id:
        parameters.append(
            {
                "name": "resourceId",
                "in": "path",
                "required": True,
                "description": "The balance's resource id in the wallet.",
                "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                "example": DEMO_RESOURCE_ID,
            }
        )
    parameters.append(
        {
            "name": "X-Request-Id",
            "in": "header",
            "required": False,
            "description": "Your id for this request (1 to 64 printable characters), echoed "
            "in the reply and recorded on what it wrote; another value is replaced.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID},
        }
    )
    return parameters


_ALIAS_NOTE = f" Also served, identically, under {JSON_ALIAS}/… (the same path after the prefix)."
_DEMO_NOTE = (
    f" The examples run as the demo client `{DEMO_CLIENT}` (external voucher mode) on the demo "
    f"data (`manage.py seed_demo`): Rose Orig's subscription, {DEMO_REF}, main balance "
    f"{DEMO_RESOURCE_ID}."
)


def _request_body(binding: Binding, name: str, examples: dict) -> dict:
    return {
        "required": True,
        "content": {
            media: {
                "schema": binding.schema(name),
                "examples": {
                    key: {"summary": f"Answered {key}", "value": binding.example(value)}
                    for key, value in examples.items()
                },
            }
            for media in binding.request_media_types
        },
    }


def _operations(binding: Binding) -> dict:
    note = _DEMO_NOTE + (_ALIAS_NOTE if binding is JSON else "")
    common = {"tags": [binding.tag], "security": [{"token": []}, {"basic": []}]}
    topup = {
        **common,
        "operationId": f"topupBalance{binding.suffix}",
        "summary": "Top up a balance (MtxRequestSubscriberTopupBalance)",
        "description": "Always a credit, authorized by `Voucher`. In *card* mode (the API "
        "client's default) the Voucher is the PIN of one of our cards and Amount must equal the "
        "card's amount; in *external* mode the Voucher is the reference of a trusted voucher "
        "system (1-64 printable characters), single-use per client. A retry with the same "
        "voucher, subscription, balance and amount returns the original success; any other "
        "reuse is Result 19. Rules T1-T7; an EndTime follows the end-time rules (E1-E9). Needs "
        "permission wallets.topup_balance." + note,
        "parameters": _parameters(resource_id=True),
        "requestBody": _request_body(binding, TOPUP, TOPUP_EXAMPLES),
        "responses": _responses(binding, TOPUP_REPLIES, success=RESPONSE),
    }
    adjust_parameters = _parameters(resource_id=True)
    adjust_parameters.append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "1 to 255 printable characters. The same caller repeating the same "
            "request under the same key gets the original outcome without a second change; "
            "the same key with another request is Result 10.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    )
    adjust = {
        **common,
        "operationId": f"adjustBalance{binding.suffix}",
        "summary": "Adjust a balance (MtxRequestSubscriberAdjustBalance)",
        "description": "Credit (AdjustType 1) or debit (2) an amount, and/or change the validity "
        "with StartTime (absolute, earlier only: S1-S7) and EndTime (absolute, or an ISO 8601 "
        "duration from the current end: E1-E9). Never an amount meter. Amount may be 0 when "
        "only the validity changes. Needs permission wallets.adjust_balance." + note,
        "parameters": adjust_parameters,
        "requestBody": _request_body(binding, ADJUST, ADJUST_EXAMPLES),
        "responses": _responses(binding, ADJUST_REPLIES, success=RESPONSE, texts=_ADJUST_TEXTS),
    }
    wallet_description = (
        "The wallet's balances with amounts, validity and, for periodic balances, the current "
        "interval. Needs permission wallets.view_balance, topup_balance or adjust_balance." + note
    )
    wallet_all = {
        **common,
        "operationId": f"getWallet{binding.suffix}",
        "summary": "Read a wallet's balances (MtxResponseWallet)",
        "description": wallet_description,
        "parameters": _parameters(resource_id=False),
        "responses": _responses(binding, WALLET_REPLIES, success=WALLET),
    }
    wallet_one = {
        **wallet_all,
        "operationId": f"getWalletBalance{binding.suffix}",
        "summary": "Read one balance of a wallet (MtxResponseWallet)",
        "parameters": _parameters(resource_id=True),
    }
    base = binding.prefix + "/{owner}/{ref}/wallet"
    return {
        base: {"get": wallet_all},
        base + "/{resourceId}": {"get": wallet_one},
        base + "/{resourceId}/topup": {"put": topup},
        base + "/{resourceId}/adjustment": {"put": adjust},
    }


def _time_field(description: str) -> dict:
    return {
        "type": "string",
        "description": description + " An ISO 8601 date and time (UTC without an offset) such "
        "as 2027-01-31T00:00:00Z, or where the rules allow, an ISO 8601 duration such as P4W.",
    }


def _message(binding: Binding, name: str, required: list[str], properties: dict) -> dict:
    """An Mtx message in a binding: JSON names it in "$", XML in its root element."""
    schema = {"type": "object", "additionalProperties": False}
    if binding is JSON:
        schema["required"] = ["$", *required]
        schema["properties"] = {
            "$": {"type": "string", "const": name, "description": "The message's name."},
            **properties,
        }
    else:
        schema["xml"] = {"name": name}
        schema["required"] = required
        schema["properties"] = properties
    return schema


def _schemas(binding: Binding) -> dict:
    json = binding is JSON
    amount = {
        "type": ["string", "number"] if json else "string",
        "pattern": AMOUNT_PATTERN,
        "description": "A decimal such as 25.00: at most 18 digits each side of the point, at "
        "most the balance's precision in decimals (else Result 10)."
        + (
            " A JSON number in plain notation is accepted too and read as its exact text "
            "(25.10 stays 25.10); a string is recommended."
            if json
            else ""
        ),
        "examples": ["25.00"],
    }
    adjust_type = (
        {
            "oneOf": [
                {"$ref": "#/components/schemas/AdjustType"},
                {"$ref": "#/components/schemas/AdjustTypeNumber"},
            ],
            "description": "1 credit, 2 debit; a string or a JSON number.",
        }
        if json
        else {"$ref": "#/components/schemas/AdjustType"}
    )
    text = {"type": "string"}
    suffix = "" if json else "Xml"
    wallet_items = {"$ref": f"#/components/schemas/{BALANCE_INFO}{suffix}"}
    return {
        TOPUP + suffix: _message(
            binding,
            TOPUP,
            ["Amount", "Voucher"],
            {
                "Amount": amount,
                "Voucher": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "description": "Card mode: the card's PIN (spaces and dashes ignored). "
                    "External mode: your reference, 1-64 printable characters."
                    + (" Always a string: a number is Result -1." if json else ""),
                },
                "EndTime": _time_field("Optional new end of the balance (E1-E9)."),
                "StartTime": _time_field("Never accepted in a top-up: Result 40 (rule T7)."),
            },
        ),
        ADJUST + suffix: _message(
            binding,
            ADJUST,
            ["AdjustType", "Amount", "Reason"],
            {
                "AdjustType": adjust_type,
                "Amount": {**amount, "examples": ["5.00"]},
                "Reason": {"type": "string", "minLength": 1, "maxLength": 255},
                "StartTime": _time_field("Absolute, earlier than the current start (S1-S7)."),
                "EndTime": _time_field("New end of the balance (E1-E9)."),
            },
        ),
        RESPONSE + suffix: _message(
            binding,
            RESPONSE,
            ["RouteId", "Result", "ResultText"],
            {
                "RouteId": {"type": "integer", "const": 1},
                "Result": {
                    "type": "integer",
                    "description": "0 OK; the other values and their HTTP statuses are in "
                    "each operation's responses.",
                },
                "ResultText": text,
            },
        ),
        WALLET + suffix: _message(
            binding,
            WALLET,
            ["RouteId", "Result", "ResultText", "BalanceArray"],
            {
                "RouteId": {"type": "integer", "const": 1},
                "Result": {"type": "integer", "const": 0},
                "ResultText": text,
                "BalanceArray": {
                    "type": "array",
                    "items": wallet_items,
                    **({} if json else {"xml": {"wrapped": True}}),
                },
            },
        ),
        BALANCE_INFO + suffix: _message(
            binding,
            BALANCE_INFO,
            [
                "ResourceId",
                "TemplateName",
                "Class",
                "Currency",
                "Amount",
                "StartTime",
                "IsLive",
                "IsMain",
                "IsPrivate",
            ],
            {
                "ResourceId": {"type": "integer"},
                "TemplateName": text,
                "Class": {"$ref": "#/components/schemas/BalanceClass"},
                "Currency": text,
                "Amount": {**text, "description": "At the template's precision."},
                "AvailableAmount": {**text, "description": "Periodic: the current interval's."},
                "StartTime": {**text, "format": "date-time"},
                "EndTime": {**text, "format": "date-time", "description": "None: no end."},
                "IntervalStartTime": {**text, "format": "date-time"},
                "IntervalEndTime": {**text, "format": "date-time"},
                "IsLive": {"type": "boolean"},
                "IsMain": {"type": "boolean"},
                "IsPrivate": {"type": "boolean"},
                "AggregateBalanceId": {"type": "integer"},
            },
        ),
    }


def openapi() -> dict:
    paths = {**_operations(XML), **_operations(JSON)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Topup REST gateway (MATRIXX SubMan style)",
            "version": "3",
            "description": "Two bindings of the same operations. XML under /rsgateway/data/v3/ "
            f"(requests {' or '.join(XML.request_media_types)}, replies "
            f"{XML.response_media_type}); JSON under /rsgateway/data/json/ (or "
            f"{JSON_ALIAS}/; requests and replies {JSON.response_media_type}, the message "
            'named in "$"). Another Content-Type is 415. Every reply is an MtxResponse (a '
            "wallet reading: MtxResponseWallet) whose Result decides the HTTP status; the "
            "table is at /rsgateway/docs/. A method a path does not serve is 405 with Allow. "
            "Requests are throttled per API client (429 with Retry-After).",
        },
        "servers": [{"url": "/"}],
        "security": [{"token": []}, {"basic": []}],
        "tags": [
            {"name": XML.tag, "description": "/rsgateway/data/v3/: XML."},
            {"name": JSON.tag, "description": f"/rsgateway/data/json/ and {JSON_ALIAS}/: JSON."},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Authorization: Token <key>` (`manage.py drf_create_token`).",
                },
                "basic": {"type": "http", "scheme": "basic"},
            },
            "headers": _HEADERS,
            "schemas": {
                **_schemas(JSON),
                **_schemas(XML),
                "Owner": {"type": "string", "enum": ["subscription", "subscriber"]},
                "AdjustType": {
                    "type": "string",
                    "enum": ["1", "2"],
                    "x-enum-varnames": ["CREDIT", "DEBIT"],
                },
                "AdjustTypeNumber": {
                    "type": "integer",
                    "enum": [1, 2],
                    "x-enum-varnames": ["CREDIT", "DEBIT"],
                },
                "BalanceClass": {
                    "type": "string",
                    "enum": ["simple", "periodic", "virtual", "meter"],
                },
            },
        },
    }


def openapi_json(request):
    return JsonResponse(openapi(), json_dumps_params={"indent": 2, "ensure_ascii": False})


def openapi_page(request):
    host = request.get_host()
    return TemplateResponse(
        request,
        "rsgateway/api_docs.html",
        {
            "results": [
                {
                    "result": result,
                    "http": status,
                    "when": when,
                    "xml": XML.example(mtx_data(result, text)),
                }
                for status, result, when, text in REPLIES
            ],
            "base": f"{request.scheme}://{host}",
            "topup_xml": XML.example(TOPUP_EXAMPLES["Result 0"]),
            "adjust_xml": XML.example(ADJUST_EXAMPLES["Result 0"]),
        },
    )
