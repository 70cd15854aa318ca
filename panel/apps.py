from django.apps import AppConfig


class PanelConfig(AppConfig):
    name = "panel"
    label = "panel"
    verbose_name = "Client panel"
