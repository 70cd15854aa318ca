"""The schemas of the API's messages in each binding, and the small ones they share."""

from rsgateway.serializers import ADJUST, AMOUNT_PATTERN, TOPUP

from .bindings import JSON, XML, Binding

RESPONSE = "MtxResponse"
WALLET = "MtxResponseWallet"
BALANCE_INFO = "MtxBalanceInfo"


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


def _binding_schemas(binding: Binding) -> dict:
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


def component_schemas() -> dict:
    """Every schema of the document: each binding's messages, then those they share."""
    return {
        **_binding_schemas(JSON),
        **_binding_schemas(XML),
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
    }
