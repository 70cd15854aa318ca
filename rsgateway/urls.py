"""/rsgateway/…: `data/v3/…` speaks XML, `data/json/…` (or `data/json/v3/…`) speaks JSON."""

from django.urls import re_path

from . import views
from .openapi import views as openapi_views

_WALLET = r"(?P<owner>subscription|subscriber)/(?P<ref>[^/]+)/wallet"
_BINDINGS = {"xml": r"^data/v3/", "json": r"^data/json/(?:v3/)?"}

urlpatterns = [
    re_path(r"^openapi\.json$", openapi_views.openapi_json, name="rsgateway-openapi"),
    re_path(r"^docs/$", openapi_views.openapi_page, name="rsgateway-docs"),
]
for binding, prefix in _BINDINGS.items():
    urlpatterns += [
        re_path(
            prefix + _WALLET + r"/(?P<resource_id>[0-9]{1,19})/topup$",
            views.TopupView.as_view(binding=binding),
            name=f"rsgateway-{binding}-topup",
        ),
        re_path(
            prefix + _WALLET + r"/(?P<resource_id>[0-9]{1,19})/adjustment$",
            views.AdjustmentView.as_view(binding=binding),
            name=f"rsgateway-{binding}-adjustment",
        ),
        re_path(
            prefix + _WALLET + r"(?:/(?P<resource_id>[0-9]{1,19}))?$",
            views.WalletView.as_view(binding=binding),
            name=f"rsgateway-{binding}-wallet",
        ),
        re_path(prefix, views.NotFoundView.as_view(binding=binding)),
    ]
urlpatterns.append(re_path(r"", views.NotFoundView.as_view(binding="xml")))
