"""The document itself: each binding's paths and operations, with their parameters, request
bodies and responses, and the whole that /rsgateway/openapi.json serves."""

from rsgateway.errors import MAX_REQUEST_ID, mtx_data
from rsgateway.serializers import ADJUST, TOPUP

from .bindings import JSON, JSON_ALIAS, XML, Binding
from .examples import (
    ADJUST_EXAMPLES,
    ADJUST_TEXTS,
    DEMO_CLIENT,
    DEMO_REF,
    DEMO_RESOURCE_ID,
    TOPUP_EXAMPLES,
    WALLET_EXAMPLE,
)
from .replies import (
    ADJUST_REPLIES,
    HEADERS,
    REPLIES,
    TOPUP_REPLIES,
    WALLET_REPLIES,
    reply_headers,
)
from .schemas import RESPONSE, WALLET, component_schemas


def _responses(binding: Binding, replies: set, *, success: str, texts=None) -> dict:
    by_status: dict[str, dict] = {}
    for status, result, when, text in REPLIES:
        if (status, result) not in replies:
            continue
        text = (texts or {}).get((status, result), text)
        name = f"Result {result}"
        if status == 200:
            extra = {"BalanceArray": WALLET_EXAMPLE} if success == WALLET else {}
            data = mtx_data(result, text, name=success, **extra)
        else:
            data = mtx_data(result, text)
        entry = by_status.setdefault(
            str(status),
            {
                "description": "",
                "headers": reply_headers(status),
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
        "responses": _responses(binding, ADJUST_REPLIES, success=RESPONSE, texts=ADJUST_TEXTS),
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


def openapi_document() -> dict:
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
            "headers": HEADERS,
            "schemas": component_schemas(),
        },
    }
