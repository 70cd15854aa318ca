"""Hold a reply of the API to /rsgateway/openapi.json: status, media type, body schema, headers.

JSON bodies are checked with jsonschema; XML bodies are read by the document's own XML rules
(root element `xml.name`, one element per property, `xml.wrapped` arrays whose items are named
by their schema's `xml.name`, integer and boolean text) and then checked the same way.
"""

import json
import re
from xml.etree import ElementTree

from jsonschema import Draft202012Validator

# Headers every page of the site carries (security middleware) or HTTP itself: not the API's.
SITE_HEADERS = {
    "content-type",
    "content-length",
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
}


def resolve(doc: dict, node: dict) -> dict:
    while "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validate(doc: dict, schema: dict, instance) -> None:
    """Raise jsonschema's ValidationError unless `instance` fits `schema` of the document."""
    wrapped = {**schema, "components": doc["components"]}
    Draft202012Validator(wrapped, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        instance
    )


def _typed(text: str, schema: dict):
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def xml_instance(doc: dict, element: ElementTree.Element, schema: dict) -> dict:
    """The XML element as the instance its schema describes (see the module docstring)."""
    schema = resolve(doc, schema)
    assert element.tag == schema["xml"]["name"], (element.tag, schema["xml"])
    assert not element.attrib and not (element.text or "").strip()
    properties = schema.get("properties", {})
    instance: dict = {}
    for child in element:
        assert child.tag not in instance, f"{child.tag} repeated"
        prop = resolve(doc, properties.get(child.tag, {}))
        if prop.get("type") == "array":
            assert prop.get("xml", {}).get("wrapped") is True, child.tag
            instance[child.tag] = [xml_instance(doc, item, prop["items"]) for item in child]
        else:
            assert len(child) == 0, f"{child.tag} holds elements"
            instance[child.tag] = _typed(child.text or "", prop)
    return instance


def body_instance(doc: dict, media_type: str, content: bytes | str, schema: dict):
    if media_type == "application/json":
        return json.loads(content) if isinstance(content, bytes | str) else content
    text = content.decode() if isinstance(content, bytes) else content
    return xml_instance(doc, ElementTree.fromstring(text.encode()), schema)


def assert_documented(doc: dict, path: str, method: str, response) -> dict:
    """The reply is one the document lists for this operation; returns its body as an instance.

    Status, Content-Type (media type and charset as the renderer sends it), body schema, every
    required header present and fitting its schema, and no header the document does not list.
    """
    operation = doc["paths"][path][method]
    assert str(response.status_code) in operation["responses"], (
        response.status_code,
        response.content,
    )
    documented = operation["responses"][str(response.status_code)]
    media_type = response["Content-Type"].split(";")[0].strip()
    assert list(documented["content"]) == [media_type], (documented["content"].keys(), media_type)
    schema = documented["content"][media_type]["schema"]
    instance = body_instance(doc, media_type, response.content, schema)
    validate(doc, schema, instance)
    headers = {name.lower(): resolve(doc, spec) for name, spec in documented["headers"].items()}
    for name, spec in headers.items():
        if spec.get("required"):
            assert response.has_header(name), f"{name} missing on {response.status_code}"
        if response.has_header(name):
            value = response[name]
            if resolve(doc, spec["schema"]).get("type") == "integer":
                value = int(value)
            validate(doc, spec["schema"], value)
    undocumented = {name.lower() for name in response.headers} - SITE_HEADERS - set(headers)
    assert not undocumented, f"headers not in the document: {undocumented}"
    return instance
