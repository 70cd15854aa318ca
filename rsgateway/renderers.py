"""Renderers for Mtx replies: `{"$": "MtxResponse", "Result": 0, ...}` as XML or JSON.

A value that is a list renders as a container of records, each a dict naming itself with "$".
"""

import json
from decimal import Decimal
from xml.etree import ElementTree

from rest_framework.renderers import BaseRenderer


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(name: str, record: dict) -> ElementTree.Element:
    element = ElementTree.Element(name)
    for key, value in record.items():
        if key == "$" or value is None:
            continue
        child = ElementTree.SubElement(element, key)
        if isinstance(value, list):
            for item in value:
                child.append(_element(item["$"], item))
        else:
            child.text = _text(value)
    return element


class MtxXMLRenderer(BaseRenderer):
    media_type = "application/xml"
    format = "xml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        element = _element(data.get("$", "MtxResponse"), data)
        ElementTree.indent(element, space="    ")
        return ElementTree.tostring(element, encoding="utf-8", xml_declaration=True) + b"\n"


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class MtxJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None  # JSON is UTF-8 by definition

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        data = {key: value for key, value in data.items() if value is not None}
        return json.dumps(data, default=_json_default, ensure_ascii=False).encode() + b"\n"


def renderer_for(binding: str) -> BaseRenderer:
    """The renderer of every reply in a binding ("xml" or "json"), whoever answers."""
    return MtxJSONRenderer() if binding == "json" else MtxXMLRenderer()


def content_type_of(renderer: BaseRenderer) -> str:
    """The Content-Type DRF gives a reply of this renderer, for replies Django sends itself."""
    if renderer.charset:
        return f"{renderer.media_type}; charset={renderer.charset}"
    return renderer.media_type
