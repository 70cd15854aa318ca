from django.apps import AppConfig


class RsgatewayConfig(AppConfig):
    name = "rsgateway"
    verbose_name = "REST gateway"
