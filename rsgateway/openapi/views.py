"""The pages that serve the document: /rsgateway/openapi.json for tools, /rsgateway/docs/ for
people (the Result table with an XML reply for each, and a request of each kind)."""

from django.http import JsonResponse
from django.template.response import TemplateResponse

from rsgateway.errors import mtx_data

from .bindings import XML
from .document import openapi_document
from .examples import ADJUST_EXAMPLES, TOPUP_EXAMPLES
from .replies import REPLIES


def openapi_json(request):
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2, "ensure_ascii": False})


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
