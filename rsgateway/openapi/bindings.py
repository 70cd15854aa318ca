"""The API's two bindings, as the document describes them: their paths, media types and how a
message looks in each."""

from dataclasses import dataclass

from rsgateway.renderers import renderer_for
from rsgateway.serializers import ADJUST, TOPUP
from rsgateway.views import MtxView


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
