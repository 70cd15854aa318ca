"""A URLconf with no client panel, as a server of the REST API alone would have."""

from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("ping/", lambda request: HttpResponse("pong"))]
