import pytest


@pytest.fixture(autouse=True)
def card_currencies(request):
    """Balance templates in USD and EUR for every database test of the cards: a card may be only
    in a currency that a balance template uses (cards.currencies). Tests of that rule remove
    them."""
    marker = request.node.get_closest_marker("django_db")
    uses_db = marker is not None or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:
        return
    transactional = bool(marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    from tests.factories import BalanceTemplateFactory

    BalanceTemplateFactory(name="Cards USD", currency="USD")
    BalanceTemplateFactory(name="Cards EUR", currency="EUR")


@pytest.fixture
def printing_house(tmp_path):
    """A printing house's own GnuPG home with real keys (tests/cards/gpg_keys.py)."""
    from tests.cards.gpg_keys import PrintingHouse

    house = PrintingHouse(tmp_path / "printing-house-gnupg")
    yield house
    house.close()
