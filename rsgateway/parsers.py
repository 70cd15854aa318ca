"""Body parsers for the Mtx request format, XML and JSON bindings (docs/rest-api.md).

One set of rules for both: at most `BODY_LIMIT` bytes (we read at most one byte more), no DTD,
no entities, the exact root element the view expects, only that request's fields, each once, and
every value kept as the exact text sent (a PIN keeps its leading zeros, an amount its decimals).
An encoding we cannot read, named by the XML declaration or the Content-Type's charset, is a
malformed request like any other.
"""

import io
import json
import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import ParseError

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from django.utils.http import parse_header_parameters
from rest_framework.parsers import BaseParser

from common.http import readable_charset
from wallets.exceptions import Malformed

from .errors import LengthRequired
from .serializers import JSON_NUMBER_FIELDS, REQUEST_FIELDS

BODY_LIMIT = 64 * 1024
_TOO_LARGE = f"The request body is larger than {BODY_LIMIT // 1024} KiB."
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class MtxMessage:
    """A parsed request: its root element name and its fields as text."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)


def _expected(parser_context) -> tuple[str, frozenset[str]]:
    view = (parser_context or {}).get("view")
    name = getattr(view, "mtx_request", None)
    if not name:
        raise Malformed("This resource takes no request body.")
    return name, REQUEST_FIELDS[name]


def _check_charset(media_type: str | None) -> None:
    charset = parse_header_parameters(media_type or "")[1].get("charset")
    if charset is not None and not readable_charset(charset):
        raise Malformed(
            f"The Content-Type names a charset this API does not read: {charset[:40]!r}."
        )


def is_chunked(request) -> bool:
    """A body sent in chunks, its length declared nowhere."""
    meta = request.META
    return "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get(
        "CONTENT_LENGTH"
    )


def read_chunked_body(request) -> None:
    """Read a `Transfer-Encoding: chunked` body (no Content-Length) for the parser, at most the
    limit plus one byte, and hand it on as if its length had been declared.

    Django reads a body only up to its Content-Length, so without one the body would look empty.
    Only a server that ends the input where the body ends (`wsgi.input_terminated`: gunicorn,
    or nginx in front, which sends a Content-Length itself) can be read without waiting for a
    byte that never comes; any other is asked for a Content-Length (docs/rest-api.md).
    """
    if not request.META.get("wsgi.input_terminated"):
        raise LengthRequired("Send the body with a Content-Length.")
    data = request.META["wsgi.input"].read(BODY_LIMIT + 1)
    if len(data) > BODY_LIMIT:
        raise Malformed(_TOO_LARGE)
    request.META["CONTENT_LENGTH"] = str(len(data))
    request._stream = io.BytesIO(data)
    request._read_started = False


def _read(stream, parser_context) -> bytes:
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    if declared and declared.isdigit() and int(declared) > BODY_LIMIT:
        raise Malformed(_TOO_LARGE)
    data = stream.read(BODY_LIMIT + 1) if stream is not None else b""
    if len(data) > BODY_LIMIT:
        raise Malformed(_TOO_LARGE)
    if not data.strip():
        raise Malformed("The request body is empty.")
    return data


def _repeated(name: str) -> Malformed:
    return Malformed(f"Field {name[:40]!r} appears more than once.")


def _check_field(name: str, allowed: frozenset[str], seen: dict[str, str]) -> None:
    if name not in allowed:
        raise Malformed(f"Unknown field {name[:40]!r}.")
    if name in seen:
        raise _repeated(name)


class MtxXMLParser(BaseParser):
    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None) -> MtxMessage:
        name, allowed = _expected(parser_context)
        _check_charset(media_type)
        data = _read(stream, parser_context)
        try:
            root = ElementTree.fromstring(
                data, forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
        except DefusedXmlException:
            raise Malformed("DTDs and entities are not allowed in a request.") from None
        except LookupError:
            # The declaration names no codec ("x-unknown") or one that is not a text encoding
            # ("rot13"): expat asks Python's codecs, which answer LookupError.
            raise Malformed(
                "The XML declaration names an encoding this API does not read."
            ) from None
        except (ParseError, ValueError):
            raise Malformed("The request body is not well-formed XML.") from None
        if root.tag != name:
            raise Malformed(f"The root element must be {name}.")
        if root.attrib or (root.text or "").strip():
            raise Malformed(f"{name} takes only child elements.")
        fields: dict[str, str] = {}
        for child in root:
            if not isinstance(child.tag, str):
                continue  # a comment or processing instruction
            _check_field(child.tag, allowed, fields)
            if child.attrib or len(child):
                raise Malformed(f"Field {child.tag!r} must hold text only.")
            if (child.tail or "").strip():
                raise Malformed("Text outside a field.")
            fields[child.tag] = (child.text or "").strip()
        return MtxMessage(name=name, fields=fields)


class MtxTextXMLParser(MtxXMLParser):
    media_type = "text/xml"


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise _repeated(key)
        result[key] = value
    return result


class _Number(str):
    """A JSON number, kept as the exact text sent."""


def _no_constants(text):
    raise Malformed("NaN and Infinity are not numbers.")


class MtxJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> MtxMessage:
        name, allowed = _expected(parser_context)
        # JSON is UTF-8 whatever the charset says (RFC 8259, section 8.1); one that names no
        # text encoding at all is still a client's mistake worth telling.
        _check_charset(media_type)
        data = _read(stream, parser_context)
        try:
            document = json.loads(
                data.decode("utf-8"),
                parse_float=_Number,
                parse_int=_Number,
                parse_constant=_no_constants,
                object_pairs_hook=_no_duplicates,
            )
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise Malformed("The request body is not well-formed JSON.") from None
        if not isinstance(document, dict):
            raise Malformed("The request body must be a JSON object.")
        if document.pop("$", None) != name:
            raise Malformed(f'The request must be {{"$": "{name}", ...}}.')
        fields: dict[str, str] = {}
        for key, value in document.items():
            _check_field(key, allowed, fields)
            if not isinstance(value, str):
                kind = "a string or a number" if key in JSON_NUMBER_FIELDS else "a string"
                raise Malformed(f"Field {key!r} must be {kind}.")
            if isinstance(value, _Number) and key not in JSON_NUMBER_FIELDS:
                raise Malformed(f"Field {key!r} must be a string: a number loses leading zeros.")
            if _SURROGATE.search(value):
                # "\ud800" escapes a lone surrogate: not a character, and no database takes it.
                raise Malformed(f"Field {key!r} is not valid Unicode text.")
            fields[key] = str(value).strip()
        return MtxMessage(name=name, fields=fields)
