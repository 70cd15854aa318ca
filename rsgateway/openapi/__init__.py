"""The OpenAPI description of /rsgateway/, written by hand and served by the project.

`/rsgateway/openapi.json` for tools, `/rsgateway/docs/` for people (no JavaScript, no CDN).
Hand-written rather than generated from serializers (docs/rest-api.md, "The OpenAPI document"):
the views have no DRF serializers to read, and what a generator cannot see (one media type per
binding, the "$" key, the XML shapes, the Result of each status) is most of the document. It is
built from the code's own tables (parsers, renderer, HTTP_STATUS, REQUEST_FIELDS), and
tests/rsgateway/test_openapi.py holds it to the real replies.

- `bindings`: the XML and JSON bindings, their media types and how each writes a message.
- `replies`: every reply the API gives (status, Result, when) and its headers.
- `examples`: the request and reply examples, which run on the demo data.
- `schemas`: the messages' schemas in each binding.
- `document`: the paths and operations, and the document that puts them together.
- `views`: the two pages that serve it.
"""
