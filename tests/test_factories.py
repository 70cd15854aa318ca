"""Every model of the project's apps has a factory that builds a valid row."""

import pytest
from django.apps import apps
from factory.django import DjangoModelFactory

from tests import factories

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("subscribers", "wallets", "cards")


def factory_for(model):
    for item in vars(factories).values():
        is_factory = isinstance(item, type) and issubclass(item, DjangoModelFactory)
        if is_factory and item._meta.model is model:
            return item
    return None


@pytest.mark.parametrize(
    "model",
    [m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS],
    ids=lambda m: m.__name__,
)
def test_model_has_a_working_factory(model):
    factory = factory_for(model)

    assert factory is not None, f"no factory for {model.__name__} in tests/factories.py"
    instance = factory()
    assert model.objects.filter(pk=instance.pk).exists()
    assert str(instance)
