from django.apps import AppConfig


class CardsConfig(AppConfig):
    name = "cards"
    verbose_name = "Top-up cards"

    def ready(self):
        from . import checks  # noqa: F401 - registers the PIN key checks (check --deploy)
