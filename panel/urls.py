from django.urls import path

from . import views

app_name = "panel"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("redeem/", views.redeem, name="redeem"),
    path("login/", views.PanelLoginView.as_view(), name="login"),
    path("logout/", views.PanelLogoutView.as_view(), name="logout"),
    path("language/", views.language, name="language"),
    path("password/", views.PanelPasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/",
        views.PanelPasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
]
