"""The OpenAPI description of /rsgateway/, written by hand and served by the project.

`/rsgateway/openapi.json` for tools, `/rsgateway/docs/` for people (no JavaScript, no CDN).
"""

from django.http import JsonResponse
from django.template.response import TemplateResponse

from wallets.exceptions import Result

from .errors import HTTP_STATUS, ROUTE_ID, mtx_data

# Result → (when, ResultText of the example)
RESULTS = [
    (Result.OK, "Success.", "OK"),
    (
        Result.MALFORMED,
        "Body not well-formed, wrong root element, unknown or repeated field, DTD or entity, "
        "body over 64 KiB. Also with HTTP 405 (method) and 415 (Content-Type).",
        "Unknown field 'Bonus'.",
    ),
    (Result.UNAUTHENTICATED, "No or bad credentials.", "Invalid token."),
    (
        Result.FORBIDDEN,
        "Authenticated but not allowed. Also with HTTP 429: too many requests (throttling) "
        "or too many wrong card PINs (redemption locked; see Retry-After).",
        "You do not have permission to do this.",
    ),
    (
        Result.NOT_FOUND,
        "Subscription, subscriber, balance or card voucher not found; unknown path.",
        "No voucher matches this code.",
    ),
    (
        Result.ALREADY_REDEEMED,
        "Voucher already redeemed (or reference already used).",
        ("This voucher has already been used."),
    ),
    (
        Result.BAD_DATA,
        "Bad data: Amount ≤ 0 or with too many decimals (T1, T6), missing Voucher (T2), voucher "
        "expired or Amount/currency not the card's, a time rule broken (S1–S7, E1–E9), "
        "balance not live (T3).",
        "Amount has more than 2 decimal places.",
    ),
    (
        Result.NOT_SUPPORTED,
        "Not supported: top-up or adjustment of an amount meter (T5), StartTime in a top-up (T7).",
        "An amount meter cannot be topped up.",
    ),
    (Result.VOUCHER_BLOCKED, "Voucher blocked.", "This voucher is blocked."),
    (
        Result.UNKNOWN_SEARCH_TERM,
        "Unknown search term in {ref}.",
        "Unknown search term 'Imsi': use an ObjectId, ExternalId+value or AccessNumber+value.",
    ),
    (Result.INTERNAL_ERROR, "Unexpected server error; safe to retry.", "Internal error."),
]


# Results that mtx_exception_handler also answers with another HTTP status than HTTP_STATUS's:
# -7 when throttled or the redemption is locked, -1 for a method or Content-Type not served.
_OTHER_STATUSES = {Result.FORBIDDEN: (429,), Result.MALFORMED: (405, 415)}


def _statuses(result: int) -> list[int]:
    return [HTTP_STATUS[result], *_OTHER_STATUSES.get(result, ())]


def _xml(result: int, text: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<MtxResponse>\n'
        f"    <RouteId>{ROUTE_ID}</RouteId>\n"
        f"    <Result>{result}</Result>\n    <ResultText>{text}</ResultText>\n</MtxResponse>\n"
    )


def _responses(results: list[int]) -> dict:
    by_status: dict[str, dict] = {}
    for result, when, text in RESULTS:
        if result not in results:
            continue
        for status in _statuses(result):
            entry = by_status.setdefault(
                str(status),
                {
                    "description": "",
                    "content": {
                        "application/xml": {"examples": {}},
                        "application/json": {"examples": {}},
                    },
                },
            )
            name = f"Result {result}"
            entry["description"] = "; ".join(
                filter(None, [entry["description"], f"Result {result}: {when}"])
            )
            entry["content"]["application/xml"]["examples"][name] = {
                "summary": when,
                "value": _xml(result, text),
            }
            entry["content"]["application/json"]["examples"][name] = {
                "summary": when,
                "value": mtx_data(result, text),
            }
    for entry in by_status.values():
        for media in entry["content"].values():
            media["schema"] = {"$ref": "#/components/schemas/MtxResponse"}
    return by_status


_PARAMETERS = [
    {
        "name": "owner",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": ["subscription", "subscriber"]},
    },
    {
        "name": "ref",
        "in": "path",
        "required": True,
        "description": "ObjectId (bare number), ExternalId+value (subscriptions) or "
        "AccessNumber+value (e.g. AccessNumber+5555555555).",
        "schema": {"type": "string"},
        "example": "AccessNumber+5555555555",
    },
    {
        "name": "resourceId",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
        "example": 12,
    },
]
_AUTH_RESULTS = [Result.MALFORMED, Result.UNAUTHENTICATED, Result.FORBIDDEN, Result.NOT_FOUND]

TOPUP_XML = """<MtxRequestSubscriberTopupBalance>
   <Amount>25.00</Amount>
   <Voucher>ABC12345679</Voucher>
</MtxRequestSubscriberTopupBalance>
"""
ADJUST_XML = """<MtxRequestSubscriberAdjustBalance>
   <AdjustType>1</AdjustType>
   <Amount>5.00</Amount>
   <Reason>Goodwill credit, ticket 4711</Reason>
   <EndTime>P4W</EndTime>
</MtxRequestSubscriberAdjustBalance>
"""


def _operation(summary, description, request, results, *, json_example, xml_example, extra=()):
    operation = {
        "summary": summary,
        "description": description,
        "parameters": _PARAMETERS + list(extra),
        "responses": _responses(_AUTH_RESULTS + results + [Result.INTERNAL_ERROR, Result.OK]),
    }
    if request:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/xml": {
                    "schema": {"$ref": f"#/components/schemas/{request}"},
                    "example": xml_example,
                },
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{request}"},
                    "example": json_example,
                },
            },
        }
    return operation


def _time_field(description):
    return {"type": "string", "description": description, "examples": ["2027-01-31T00:00:00Z"]}


def openapi() -> dict:
    topup = _operation(
        "Top up a balance (MtxRequestSubscriberTopupBalance)",
        "Always a credit, authorized by `Voucher`. In *card* mode (default) the Voucher is the "
        "PIN of one of our cards and Amount must equal the card's amount; in *external* mode the "
        "Voucher is the reference of a trusted voucher system (1-64 printable characters), "
        "single-use per client. A retry with the same voucher, subscription, balance and amount "
        "returns the original success; any other reuse is Result 19. Rules T1-T7; an EndTime "
        "follows the end-time rules (E1-E9). Needs permission wallets.topup_balance.",
        "MtxRequestSubscriberTopupBalance",
        [
            Result.ALREADY_REDEEMED,
            Result.BAD_DATA,
            Result.NOT_SUPPORTED,
            Result.VOUCHER_BLOCKED,
            Result.UNKNOWN_SEARCH_TERM,
        ],
        xml_example=TOPUP_XML,
        json_example={
            "$": "MtxRequestSubscriberTopupBalance",
            "Amount": "25.00",
            "Voucher": "ABC12345679",
        },
    )
    adjust = _operation(
        "Adjust a balance (MtxRequestSubscriberAdjustBalance)",
        "Credit (AdjustType 1) or debit (2) an amount, and/or change the validity with StartTime "
        "(absolute, earlier only: S1-S7) and EndTime (absolute or ISO 8601 duration from the "
        "current end: E1-E9). Never an amount meter. Amount may be 0 when only the validity "
        "changes. Optional Idempotency-Key header: a repeat with the same key and request "
        "returns the original success without a second change. Needs wallets.adjust_balance.",
        "MtxRequestSubscriberAdjustBalance",
        [Result.BAD_DATA, Result.NOT_SUPPORTED, Result.UNKNOWN_SEARCH_TERM],
        xml_example=ADJUST_XML,
        json_example={
            "$": "MtxRequestSubscriberAdjustBalance",
            "AdjustType": "1",
            "Amount": "5.00",
            "Reason": "Goodwill credit, ticket 4711",
            "EndTime": "P4W",
        },
        extra=[
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
            }
        ],
    )
    wallet = _operation(
        "Read a wallet's balances (MtxResponseWallet)",
        "The balances of the wallet, or the one balance resourceId, with amounts, validity and, "
        "for periodic balances, the current interval. Needs view, top-up or adjust permission.",
        None,
        [Result.BAD_DATA, Result.UNKNOWN_SEARCH_TERM],
        xml_example=None,
        json_example=None,
    )
    wallet["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/MtxResponseWallet"
    }
    wallet["responses"]["200"]["content"]["application/json"]["examples"]["Result 0"]["value"] = (
        mtx_data(
            Result.OK,
            "OK",
            name="MtxResponseWallet",
            BalanceArray=[
                {
                    "$": "MtxBalanceInfo",
                    "ResourceId": 12,
                    "TemplateName": "Main balance USD",
                    "Class": "simple",
                    "Currency": "USD",
                    "Amount": "40.00",
                    "StartTime": "2026-11-08T00:00:00Z",
                    "IsLive": True,
                    "IsMain": True,
                    "IsPrivate": False,
                }
            ],
        )
    )
    wallet_one = {**wallet, "summary": "Read one balance of a wallet (MtxResponseWallet)"}
    wallet_all = {**wallet, "parameters": _PARAMETERS[:2]}
    paths = {}
    for prefix, binding in (("/rsgateway/data/v3", "XML"), ("/rsgateway/data/json", "JSON")):
        tag = {"tags": [f"{binding} binding"]}
        base = prefix + "/{owner}/{ref}/wallet"
        paths[base] = {"get": {**wallet_all, **tag}}
        paths[base + "/{resourceId}"] = {"get": {**wallet_one, **tag}}
        paths[base + "/{resourceId}/topup"] = {"put": {**topup, **tag}}
        paths[base + "/{resourceId}/adjustment"] = {"put": {**adjust, **tag}}
    text = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Topup REST gateway (MATRIXX SubMan style)",
            "version": "3",
            "description": "XML under /rsgateway/data/v3/ (Content-Type: application/xml), JSON "
            "under /rsgateway/data/json/ (Content-Type: application/json; the root element "
            'is given as "$"). Every reply is an MtxResponse whose Result decides the HTTP '
            "status (see the table at /rsgateway/docs/). Throttled per client.",
        },
        "servers": [{"url": "/"}],
        "security": [{"token": []}, {"basic": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Authorization: Token <key>`",
                },
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": {
                "MtxRequestSubscriberTopupBalance": {
                    "type": "object",
                    "xml": {"name": "MtxRequestSubscriberTopupBalance"},
                    "required": ["Amount", "Voucher"],
                    "additionalProperties": False,
                    "properties": {
                        "$": {"const": "MtxRequestSubscriberTopupBalance"},
                        "Amount": {"type": "string", "examples": ["25.00"]},
                        "Voucher": {"type": "string", "maxLength": 64},
                        "EndTime": _time_field("Absolute time or ISO 8601 duration (P4W)."),
                        "StartTime": _time_field("Not supported in a top-up (Result 40, T7)."),
                    },
                },
                "MtxRequestSubscriberAdjustBalance": {
                    "type": "object",
                    "xml": {"name": "MtxRequestSubscriberAdjustBalance"},
                    "required": ["AdjustType", "Amount", "Reason"],
                    "additionalProperties": False,
                    "properties": {
                        "$": {"const": "MtxRequestSubscriberAdjustBalance"},
                        "AdjustType": {"type": "string", "enum": ["1", "2"]},
                        "Amount": {"type": "string", "examples": ["5.00"]},
                        "Reason": {"type": "string", "maxLength": 255},
                        "StartTime": _time_field("Absolute, earlier than the current start."),
                        "EndTime": _time_field("Absolute time or ISO 8601 duration (P4W)."),
                    },
                },
                "MtxResponse": {
                    "type": "object",
                    "xml": {"name": "MtxResponse"},
                    "properties": {
                        "RouteId": {"type": "integer"},
                        "Result": {"type": "integer"},
                        "ResultText": text,
                    },
                },
                "MtxResponseWallet": {
                    "type": "object",
                    "xml": {"name": "MtxResponseWallet"},
                    "properties": {
                        "RouteId": {"type": "integer"},
                        "Result": {"type": "integer"},
                        "ResultText": text,
                        "BalanceArray": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/MtxBalanceInfo"},
                        },
                    },
                },
                "MtxBalanceInfo": {
                    "type": "object",
                    "properties": {
                        "ResourceId": {"type": "integer"},
                        "TemplateName": text,
                        "Class": {"enum": ["simple", "periodic", "virtual", "meter"]},
                        "Currency": text,
                        "Amount": text,
                        "AvailableAmount": text,
                        "StartTime": text,
                        "EndTime": text,
                        "IntervalStartTime": text,
                        "IntervalEndTime": text,
                        "IsLive": {"type": "boolean"},
                        "IsMain": {"type": "boolean"},
                        "IsPrivate": {"type": "boolean"},
                        "AggregateBalanceId": {"type": "integer"},
                    },
                },
            },
        },
    }


def openapi_json(request):
    return JsonResponse(openapi(), json_dumps_params={"indent": 2})


def openapi_page(request):
    host = request.get_host()
    return TemplateResponse(
        request,
        "rsgateway/api_docs.html",
        {
            "results": [
                {
                    "result": r,
                    "http": ", ".join(str(status) for status in _statuses(r)),
                    "when": when,
                    "xml": _xml(r, text),
                }
                for r, when, text in RESULTS
            ],
            "base": f"{request.scheme}://{host}",
            "topup_xml": TOPUP_XML,
            "adjust_xml": ADJUST_XML,
        },
    )
