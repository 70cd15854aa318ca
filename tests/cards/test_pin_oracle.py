"""No PIN oracle (docs/reliability.md): outside redemption, only a user who may see every PIN a
check could match learns whether a PIN exists; every such check is audited and counted by the
global failure budget."""

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cards import pins
from cards.events import PinsChecked
from cards.lockout import failure_budget_status
from cards.models import CardEvent, TopUpCard
from cards.models.events import CardEventKind
from subscribers.models import StaffReseller
from tests.cards.admin_helpers import CARD_PERMS, operator, snapshot
from tests.factories import ResellerFactory, TopUpCardFactory

pytestmark = pytest.mark.django_db

IMPORT = reverse("admin:cards_topupcard_import")
PROCESS = reverse("admin:cards_topupcard_process_import")
SEARCH = reverse("admin:cards_topupcard_search")
CHANGELIST = reverse("admin:cards_topupcard_changelist")
HEADER = "Serial Number,Amount,Currency,PIN Code,Reseller,Expiry Date\n"


def upload(client, text: str):
    return client.post(
        IMPORT,
        {
            "resource": "0",
            "format": "0",
            "import_file": SimpleUploadedFile("cards.csv", text.encode(), "text/csv"),
        },
    )


def checks():
    return list(CardEvent.objects.filter(kind=CardEventKind.PINS_CHECKED).order_by("pk"))


def uploads_in_cache() -> list[str]:
    return [key for key in cache._cache if "import" in key]  # locmem, tests only


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


@pytest.fixture
def two_resellers():
    mine, theirs = ResellerFactory(name="Mine"), ResellerFactory(name="Theirs")
    their_card = TopUpCardFactory(series="8", number=1, reseller=theirs)
    return mine, theirs, their_card


# --- the import ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "perms, scoped",
    [
        ((*CARD_PERMS, "view_pin"), True),  # sees the PINs of one reseller only
        (CARD_PERMS, False),  # sees no PIN
    ],
    ids=["scoped-with-view-pin", "unscoped-without-view-pin"],
)
def test_who_may_not_see_every_pin_cannot_import_pins(client, two_resellers, perms, scoped):
    mine, _, their_card = two_resellers
    user = operator(*perms, username="importer")
    if scoped:
        StaffReseller.objects.create(user=user, reseller=mine)
    client.force_login(user)
    before = snapshot(TopUpCard), snapshot(CardEvent)
    # The other reseller's live PIN: on the old main the preview said "Another card has this
    # PIN already" to anyone who may add cards.
    text = (
        HEADER
        + f"20-000000001,10.00,USD,{their_card.pin},{mine.name if scoped else ''},2030-01-01\n"
    )

    response = upload(client, text)

    assert response.status_code == 302 and response["Location"] == CHANGELIST
    page = client.get(CHANGELIST).content.decode()
    assert "checked against" in page  # the refusal says why
    assert "this PIN" not in page and 'id="import-cards"' not in page
    assert client.get(IMPORT).status_code == 302  # the form is not offered either
    assert (snapshot(TopUpCard), snapshot(CardEvent)) == before
    assert uploads_in_cache() == []  # the file was never kept


def test_an_operator_who_sees_every_pin_imports_and_each_check_is_audited(admin_client, settings):
    settings.REDEEM_FAILURE_BUDGET = 1
    existing = TopUpCardFactory(series="21", number=1, reseller=None)
    clash = HEADER + (
        f"21-000000002,10.00,USD,{existing.pin},,2030-01-01\n"
        "21-000000003,10.00,USD,555566667777,,2030-01-01\n"
    )

    preview = upload(admin_client, clash)

    page = preview.content.decode()
    assert "Card 21-000000001 has this PIN already." in page and existing.pin not in page
    [check] = checks()
    assert check.actor.username == "admin" and check.ip_address == "127.0.0.1"
    assert check.changes == {
        PinsChecked.WHAT: PinsChecked.IMPORT_PREVIEW,
        PinsChecked.CHECKED: 2,
        PinsChecked.MATCHED: 1,
    }

    fine = HEADER + "21-000000002,10.00,USD,555566667777,,2030-01-01\n"
    confirm = upload(admin_client, fine).context["confirm_form"].initial
    admin_client.post(PROCESS, {**confirm, "resource": "0"})

    assert TopUpCard.objects.filter(series="21").count() == 2
    assert [c.changes[PinsChecked.WHAT] for c in checks()] == [
        PinsChecked.IMPORT_PREVIEW,
        PinsChecked.IMPORT_PREVIEW,
        PinsChecked.IMPORT,
    ]
    budget = failure_budget_status()
    assert budget.failures == 3 and budget.exceeded
    assert budget.top_ips == [("127.0.0.1", 3)]


def test_a_pin_an_older_digest_key_stored_is_found_too(admin_client, settings):
    settings.PIN_DIGEST_KEYS = ["old-key-that-made-the-card"]
    existing = TopUpCardFactory(series="22", number=1, reseller=None)
    settings.PIN_DIGEST_KEYS = ["new-key", "old-key-that-made-the-card"]

    preview = upload(admin_client, HEADER + f"22-000000002,10.00,USD,{existing.pin},,2030-01-01\n")

    assert "Card 22-000000001 has this PIN already." in preview.content.decode()
    assert preview.context.get("confirm_form") is None


def test_a_card_written_between_preview_and_confirm_rolls_everything_back(admin_client):
    text = HEADER + (
        "23-000000001,10.00,USD,555566667777,,2030-01-01\n"
        "23-000000002,10.00,USD,555566668888,,2030-01-01\n"
    )
    confirm = upload(admin_client, text).context["confirm_form"].initial
    TopUpCardFactory(series="24", number=1, pin="555566668888", reseller=None)
    before = snapshot(TopUpCard)

    done = admin_client.post(PROCESS, {**confirm, "resource": "0"}, follow=True)

    page = done.content.decode()
    assert "Nothing was imported: row 2: Card 24-000000001 has this PIN already." in page
    assert "555566668888" not in page
    assert snapshot(TopUpCard) == before
    assert not CardEvent.objects.filter(kind=CardEventKind.IMPORTED).exists()


# --- the Advanced Search -------------------------------------------------------------------------


def test_staff_without_view_pin_cannot_search_by_pin(client, two_resellers):
    _, _, card = two_resellers
    client.force_login(operator(*CARD_PERMS, username="clerk"))

    response = client.post(SEARCH, {"pin": card.pin, "_search": "Search"})

    assert card.pin not in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "Searching by PIN Code needs the permission to see card PINs." in page
    assert card.serial not in page  # a refused search selects no card
    assert 'name="pin"' not in page  # the field is not offered
    assert checks() == []


def test_a_search_reference_is_refused_once_the_permission_is_gone(client, two_resellers):
    _, _, card = two_resellers
    user = operator(*CARD_PERMS, "view_pin", username="clerk")
    client.force_login(user)
    location = client.post(SEARCH, {"pin": card.pin})["Location"]
    user.user_permissions.remove(user.user_permissions.get(codename="view_pin"))

    page = client.get(location)

    assert "needs the permission to see card PINs" in page.content.decode()
    assert list(page.context["cl"].result_list) == []


def test_scoped_staff_learn_nothing_about_another_resellers_pin(client, two_resellers):
    """A PIN without a Luhn digit (imported cards) is searchable only where a card has it: on the
    old main that lookup ran over every card, so "searchable" told of another reseller's card."""
    mine, theirs, _ = two_resellers
    their_pin = "123456789010"
    assert not pins.luhn_valid(their_pin)
    TopUpCardFactory(series="8", number=2, reseller=theirs, pin=their_pin)
    unknown = "123456789020"
    user = operator(*CARD_PERMS, "view_pin", username="scoped")
    StaffReseller.objects.create(user=user, reseller=mine)
    client.force_login(user)

    answers = []
    for typed in (their_pin, unknown):
        response = client.post(SEARCH, {"pin": typed}, follow=True)
        answers.append(
            (
                list(response.context["cl"].result_list),
                [str(m) for m in response.context["messages"]],
                response.context["cl"].search.form.errors,
            )
        )

    assert answers[0] == answers[1]
    assert answers[0] == ([], [], {"pin_ref": ["This is not a valid PIN: please check the code."]})
    assert [c.changes[PinsChecked.MATCHED] for c in checks()] == [0, 0]


def test_a_search_by_pin_is_audited_and_counted(client, two_resellers, settings):
    settings.REDEEM_FAILURE_BUDGET = 0
    mine, _, _ = two_resellers
    my_card = TopUpCardFactory(series="9", number=1, reseller=mine)
    user = operator(*CARD_PERMS, "view_pin", username="scoped")
    StaffReseller.objects.create(user=user, reseller=mine)
    client.force_login(user)

    location = client.post(SEARCH, {"pin": pins.format_pin(my_card.pin)})["Location"]

    assert list(client.get(location).context["cl"].result_list) == [my_card]
    [check] = checks()
    assert check.actor == user and check.ip_address == "127.0.0.1"
    assert check.changes == {
        PinsChecked.WHAT: PinsChecked.SEARCH,
        PinsChecked.CHECKED: 1,
        PinsChecked.MATCHED: 1,
    }
    assert my_card.pin not in str(check.changes)
    assert failure_budget_status().failures == 1
