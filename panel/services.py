"""Client onboarding: one call creates everything a client needs to log in to the panel and redeem
a card (docs/panel.md, "Adding a client"): the login, the subscriber, the subscription with its
access numbers, the wallet with its balances, and the right to redeem.

It lives in the panel because it needs subscribers, wallets and the cards' permission, and the
clients it creates are the panel's users.
"""

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from subscribers.models import AccessNumber, Reseller, Subscriber, Subscription
from subscribers.selectors import staff_reseller
from wallets.exceptions import WalletError
from wallets.models import (
    Balance,
    BalanceKind,
    BalanceTemplate,
    Channel,
    LedgerKind,
    Wallet,
)
from wallets.services.checks import AMOUNT_LIMIT, decimal_places
from wallets.services.intervals import balance_intervals_ensure, current_interval
from wallets.services.ledger import balance_apply

from .exceptions import FieldProblem, OnboardingError

# The group whose members may redeem cards in the panel; panel/migrations/0001 creates it.
SUBSCRIBERS_GROUP = "Subscribers"
REDEEM_PERMISSION = ("cards", "redeem_card")

# Who may onboard: whoever may add each thing the screen creates, one admin page at a time.
ONBOARDING_PERMISSIONS = (
    "auth.add_user",
    "subscribers.add_subscriber",
    "subscribers.add_subscription",
    "subscribers.add_accessnumber",
    "wallets.add_wallet",
    "wallets.add_balance",
)
# An opening amount other than zero creates money: only those who may adjust balances give one.
OPENING_AMOUNT_PERMISSION = "wallets.adjust_balance"
# A main balance is what card redemptions credit: a meter takes no top-up (rule T5) and a virtual
# balance needs an aggregated balance above it in a group's wallet, which a new client has not.
MAIN_KINDS = (BalanceKind.SIMPLE, BalanceKind.PERIODIC)
ONBOARDING_KINDS = (BalanceKind.SIMPLE, BalanceKind.PERIODIC, BalanceKind.METER)
# A periodic balance gets this many intervals and ends with the last one, as seed_demo's does:
# it never lives without an interval for "now", which would refuse every top-up (rule T3).
OPENING_REASON = "Opening balance (client onboarding)"


def may_onboard(user) -> bool:
    return bool(
        user and user.is_active and user.is_staff and user.has_perms(ONBOARDING_PERMISSIONS)
    )


@dataclass(frozen=True)
class OpeningBalance:
    template: BalanceTemplate
    resource_id: int
    amount: Decimal = Decimal("0")
    is_main: bool = False


@dataclass(frozen=True)
class ClientOnboarded:
    user: object
    subscriber: Subscriber
    subscription: Subscription
    wallet: Wallet
    balances: tuple[Balance, ...]
    can_redeem: bool


def _access_number_problems(numbers: Sequence[str]) -> list[FieldProblem]:
    if not numbers:
        return [FieldProblem("access_numbers", "Give at least one access number.")]
    problems = []
    for number, count in Counter(numbers).items():
        if count > 1:
            problems.append(FieldProblem("access_numbers", f"{number} is given twice."))
    for number in dict.fromkeys(numbers):
        try:
            # The model's own rules: length, the access_number_digits constraint, uniqueness.
            AccessNumber(number=number).full_clean(exclude=["subscription"])
        except ValidationError as error:
            codes = {e.code for errors in error.error_dict.values() for e in errors}
            if "unique" in codes:
                text = f"{number} is already the access number of another subscription."
            else:
                text = f"{number} is not an access number: 3 to 31 digits, optionally after a +."
            problems.append(FieldProblem("access_numbers", text))
    return problems


def _balance_problems(balances: Sequence[OpeningBalance], actor) -> list[FieldProblem]:
    if not balances:
        return [FieldProblem("template", "Choose at least the main balance.", row=0)]
    problems = []
    seen: set[int] = set()
    mains = [row for row, plan in enumerate(balances) if plan.is_main]
    for row, plan in enumerate(balances):
        kind = plan.template.kind
        if kind not in ONBOARDING_KINDS:
            problems.append(
                FieldProblem(
                    "template",
                    "A virtual balance aggregates into a group's balance: add it on the "
                    "Balances page once the client exists.",
                    row,
                )
            )
        if plan.resource_id in seen:
            problems.append(
                FieldProblem("resource_id", f"Resource id {plan.resource_id} is used twice.", row)
            )
        seen.add(plan.resource_id)
        if plan.is_main and kind not in MAIN_KINDS:
            problems.append(
                FieldProblem(
                    "is_main",
                    "Redeemed cards credit the main balance: it must be simple or periodic.",
                    row,
                )
            )
        problems += _amount_problems(plan, row, actor)
    if not mains:
        problems.append(
            FieldProblem("is_main", "Mark one balance as main: redeemed cards credit it.", 0)
        )
    for row in mains[1:]:
        problems.append(FieldProblem("is_main", "Only one balance can be the main one.", row))
    return problems


def _amount_problems(plan: OpeningBalance, row: int, actor) -> list[FieldProblem]:
    amount, template = plan.amount, plan.template
    if amount == 0:
        return []
    if not amount.is_finite() or amount < 0:
        text = "An opening amount is zero or more."
    elif template.kind == BalanceKind.METER:
        text = "A meter starts at zero."
    elif not actor.has_perm(OPENING_AMOUNT_PERMISSION):
        text = "Only staff who may adjust balances give an opening amount other than zero."
    elif decimal_places(amount) > template.precision:
        text = f"At most {template.precision} decimal places for this template."
    elif amount >= AMOUNT_LIMIT:
        text = "This is more than a balance can hold."
    else:
        return []
    return [FieldProblem("amount", text, row)]


def _problems(
    *, username, password, name, reseller, external_id, access_numbers, balances, actor
) -> list[FieldProblem]:
    User = get_user_model()
    problems = []
    try:
        # The model's own rules for a username: its length and the characters it may hold.
        others = [f.name for f in User._meta.concrete_fields if f.name != User.USERNAME_FIELD]
        User(username=username).clean_fields(exclude=others)
    except ValidationError as error:
        problems += [FieldProblem("username", message) for message in error.messages]
    else:
        if User.objects.filter(username__iexact=User.normalize_username(username)).exists():
            problems.append(FieldProblem("username", "A user with that username already exists."))
    try:
        validate_password(password, user=User(username=username, first_name=name))
    except ValidationError as error:
        problems += [FieldProblem("password1", message) for message in error.messages]
    if not name.strip():
        problems.append(FieldProblem("name", "Give the client's name."))
    scoped = staff_reseller(actor)
    if scoped is not None and reseller != scoped:
        problems.append(FieldProblem("reseller", f"You add clients of {scoped} only."))
    if not external_id.strip():
        problems.append(FieldProblem("external_id", "Give the subscription's external id."))
    elif Subscription.objects.filter(external_id=external_id).exists():
        problems.append(
            FieldProblem("external_id", "A subscription with this external id already exists.")
        )
    problems += _access_number_problems(access_numbers)
    problems += _balance_problems(balances, actor)
    return problems


def _subscribers_group() -> Group:
    """The group that grants the right to redeem; made again if someone deleted it."""
    group, _ = Group.objects.get_or_create(name=SUBSCRIBERS_GROUP)
    app_label, codename = REDEEM_PERMISSION
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    return group


def _open_balance(wallet: Wallet, plan: OpeningBalance, now: dt.datetime, actor) -> Balance:
    template = plan.template
    balance = Balance(
        wallet=wallet,
        resource_id=plan.resource_id,
        template=template,
        start_time=now,
        is_main=plan.is_main,
    )
    balance.save()
    first_interval = None
    if template.kind == BalanceKind.PERIODIC:
        # Its amount lives in intervals made from the template's period; the worker's recurring
        # task keeps making them ahead of time.
        balance_intervals_ensure(balance_id=balance.pk)
        first_interval = current_interval(balance, now)
    if plan.amount:
        # Through the ledger like every other change of an amount (docs/domain.md).
        balance_apply(
            balance_id=balance.pk,
            amount=plan.amount,
            kind=LedgerKind.OPENING,
            actor=actor,
            channel=Channel.ADMIN,
            reason=OPENING_REASON,
            interval_id=first_interval.pk if first_interval else None,
        )
        balance.refresh_from_db(fields=["amount"])
    return balance


def _create(
    *, username, password, name, reseller, external_id, access_numbers, balances, can_redeem, actor
) -> ClientOnboarded:
    user = get_user_model().objects.create_user(username=username, password=password)
    if can_redeem:
        user.groups.add(_subscribers_group())
    subscriber = Subscriber.objects.create(name=name.strip(), user=user, reseller=reseller)
    subscription = Subscription.objects.create(subscriber=subscriber, external_id=external_id)
    AccessNumber.objects.bulk_create(
        AccessNumber(subscription=subscription, number=number) for number in access_numbers
    )
    wallet = Wallet.objects.create(subscription=subscription)
    now = timezone.now()
    opened = []
    for row, plan in enumerate(balances):
        try:
            opened.append(_open_balance(wallet, plan, now, actor))
        except WalletError as error:
            raise OnboardingError([FieldProblem("amount", error.message, row)]) from error
    return ClientOnboarded(
        user=user,
        subscriber=subscriber,
        subscription=subscription,
        wallet=wallet,
        balances=tuple(opened),
        can_redeem=can_redeem,
    )


@transaction.atomic
def client_onboard(
    *,
    username: str,
    password: str,
    name: str,
    reseller: Reseller | None,
    external_id: str,
    access_numbers: Sequence[str],
    balances: Sequence[OpeningBalance],
    can_redeem: bool,
    actor,
) -> ClientOnboarded:
    """Create a client ready to redeem, all or nothing.

    Refused, with every problem at once (OnboardingError) and nothing written, when a rule
    fails: the username, external id or an access number taken; a password Django's validators
    refuse; not exactly one main balance, or a main balance that cards cannot credit; an opening
    amount the actor may not give or the template cannot hold; a reseller other than the
    reseller-scoped actor's own. Opening amounts other than zero are credited through the ledger.
    """
    if not may_onboard(actor):
        raise PermissionDenied
    fields = {
        "username": username,
        "password": password,
        "name": name,
        "reseller": reseller,
        "external_id": external_id,
        "access_numbers": list(access_numbers),
        "balances": list(balances),
        "actor": actor,
    }
    problems = _problems(**fields)
    if problems:
        raise OnboardingError(problems)
    try:
        with transaction.atomic():
            return _create(**fields, can_redeem=can_redeem)
    except IntegrityError:
        # Someone took a username, external id or access number since the checks above: the
        # savepoint is gone, so checking again sees their row and names the field.
        problems = _problems(**fields) or [
            FieldProblem("", "Another change got in the way: please try again.")
        ]
        raise OnboardingError(problems) from None
