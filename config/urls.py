from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

# Every admin page and the login page say whose admin this is (templates/admin/base_site.html).
admin.site.site_header = "Topup"
admin.site.site_title = "Topup"
admin.site.index_title = "Administration"

urlpatterns = [
    path("admin/cards/generationjob/", include("cards.admin.job_redirects")),
    path("admin/", admin.site.urls),
    path("panel/", include("panel.urls")),
    path("rsgateway/", include("rsgateway.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

# Django's own 400 and 500 pages, except under /rsgateway/ where they are MtxResponses.
handler400 = "rsgateway.errors.bad_request"
handler500 = "rsgateway.errors.server_error"
