import datetime as dt

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from common.admin import ReadOnlyAdminMixin
from common.formats import count_text, format_amount
from common.once import AlreadySubmitted, form_token, posted_token
from subscribers.admin_scoping import ResellerScopedAdmin

from .exceptions import WalletError
from .forms import BalanceAdjustForm, BalanceValidityForm, ReverseEntryForm
from .models import (
    ApiClient,
    Balance,
    BalanceEvent,
    BalanceInterval,
    BalanceTemplate,
    Channel,
    ExternalVoucher,
    LedgerEntry,
    Wallet,
)
from .selectors import ensure_current_intervals
from .services.adjust import balance_adjust
from .services.reversal import REVERSIBLE_KINDS, ledger_entry_reverse
from .services.submissions import submitted_once
from .services.validity import balance_change_validity


class ReadOnlyAdmin(ReadOnlyAdminMixin, ResellerScopedAdmin):
    """History: readable, never added, edited or deleted by hand."""


_BALANCE_RESELLER = "wallet__subscription__subscriber__reseller_id"


def _template(row) -> BalanceTemplate:
    """The balance template a row's amount is counted in (a balance's own, or its balance's)."""
    return row.template if isinstance(row, Balance) else row.balance.template


def amount_text(value, template: BalanceTemplate) -> str:
    """An amount at its template's precision, with thousands separators and the currency."""
    return f"{format_amount(value, template.precision)} {template.currency}"


def error_message(error: WalletError) -> str:
    """A refused change in plain words; the API's Result code (and rule) in small print after
    it, for whoever compares with the API's answer."""
    code = f"Result {error.result}" + (f", rule {error.rule}" if error.rule else "")
    return format_html('{} <small class="result-code">({})</small>', error.message, code)


class AmountAdmin:
    """Shows a row's `amount` at its balance template's precision (177.26 USD, not 177.260000):
    in the list (`amount_text` in list_display) and on its page, where it takes the amount
    field's place."""

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if "amount_text" in fields else [*fields, "amount_text"]

    def get_fields(self, request, obj=None):
        fields = list(dict.fromkeys(super().get_fields(request, obj)))
        if "amount" in fields:
            fields = [f for f in fields if f != "amount_text"]
        return ["amount_text" if f == "amount" else f for f in fields]

    @admin.display(description="Amount", ordering="amount")
    def amount_text(self, row):
        if row is None or row.pk is None:
            return "—"
        return amount_text(row.amount, _template(row))


class BalanceInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The wallet's balances, to read: each is changed on its own page, where the amount and the
    validity follow the rules (Adjust, Change validity) and every change is recorded. Editable
    rows here would let an operator move a balance's start or end with no rule and no event."""

    model = Balance
    fields = [
        "resource_id",
        "template",
        "amount_text",
        "start_time",
        "end_time",
        "parent",
        "is_main",
    ]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("template")

    amount_text = AmountAdmin.amount_text


@admin.register(Wallet)
class WalletAdmin(ResellerScopedAdmin):
    reseller_lookup = "subscription__subscriber__reseller_id"  # a group's wallet: no reseller
    list_display = ["__str__", "subscription", "group", "created_at"]
    list_select_related = ["subscription__subscriber", "group"]
    search_fields = ["subscription__external_id", "group__name"]
    autocomplete_fields = ["subscription", "group"]
    ordering = ["pk"]  # the Wallet model has none: autocomplete pages need one
    inlines = [BalanceInline]


@admin.register(BalanceTemplate)
class BalanceTemplateAdmin(ResellerScopedAdmin):
    list_display = ["name", "kind", "currency", "precision", "end_adjust_allowed", "is_private"]
    list_filter = ["kind"]
    search_fields = ["name"]


class BalanceIntervalInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Intervals are made from the template's period (wallets.services.intervals): typed by
    hand they could overlap, and the credited one would be arbitrary."""

    model = BalanceInterval
    fields = ["start_time", "end_time", "amount_text"]
    readonly_fields = fields
    ordering = ["-start_time"]
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("balance__template")

    amount_text = AmountAdmin.amount_text


@admin.register(Balance)
class BalanceAdmin(AmountAdmin, ResellerScopedAdmin):
    """The amount and validity change only through the services: Adjust and Change validity.
    A reseller's staff sees, adjusts and changes only their subscribers' balances."""

    reseller_lookup = _BALANCE_RESELLER

    list_display = ["__str__", "resource_id", "template", "amount_text", "start_time", "end_time"]
    list_select_related = ["wallet__subscription__subscriber", "wallet__group", "template"]
    search_fields = ["wallet__subscription__external_id", "wallet__group__name"]
    # The amount is shown (AmountAdmin), never a form field.
    exclude = ["amount"]
    autocomplete_fields = ["wallet", "parent"]
    inlines = [BalanceIntervalInline]
    change_form_template = "admin/wallets/balance/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A periodic balance shows its interval for now even when the worker's task is late.
        # Only a balance short of intervals is written to: the page stays a reader otherwise,
        # which on SQLite never waits for a background batch (docs/domain.md, "SQLite").
        balance = self.get_object(request, unquote(object_id))
        if balance is not None:
            ensure_current_intervals(Balance.objects.filter(pk=balance.pk))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_readonly_fields(self, request, obj=None):
        # Once a balance exists its validity follows the rules S1–S7/E1–E9: "Change validity".
        # Its wallet and template (the currency of the money it holds) stay what they were:
        # moving money to another wallet or currency is not an edit.
        if obj is not None:
            return ["amount_text", "start_time", "end_time", "wallet", "template"]
        return ["amount_text"]

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/adjust/", view(self.adjust_view), name="wallets_balance_adjust"),
            path("<int:pk>/validity/", view(self.validity_view), name="wallets_balance_validity"),
            *super().get_urls(),
        ]

    def _form_view(self, request, pk, form_class, title, apply):
        if not request.user.has_perm("wallets.adjust_balance"):
            raise PermissionDenied
        balance = get_object_or_404(self.get_queryset(request).select_related("template"), pk=pk)
        form = form_class(request.POST or None)
        balance_url = reverse("admin:wallets_balance_change", args=[balance.pk])
        if request.method == "POST" and form.is_valid():
            try:
                text = submitted_once(
                    token=posted_token(request),
                    actor=request.user,
                    apply=lambda: apply(balance, form.cleaned_data),
                )
            except AlreadySubmitted as error:
                self.message_user(request, error.message, messages.WARNING)
                return HttpResponseRedirect(balance_url)
            except WalletError as error:
                self.message_user(request, error_message(error), messages.ERROR)
            else:
                self.message_user(request, text, messages.SUCCESS)
                return HttpResponseRedirect(balance_url)
        return TemplateResponse(
            request,
            "admin/wallets/balance/action_form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": balance,
                "amount": amount_text(balance.amount, balance.template),
                "title": title,
                "form": form,
                "submission_token": form_token(request),
            },
        )

    def adjust_view(self, request, pk):
        def apply(balance, data):
            result = balance_adjust(
                balance=balance,
                adjust_type=data["adjust_type"],
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
                channel=Channel.ADMIN,
            )
            now = amount_text(result.balance.amount, balance.template)
            return f"Balance adjusted: the amount is now {now}."

        return self._form_view(request, pk, BalanceAdjustForm, "Adjust amount", apply)

    def validity_view(self, request, pk):
        def apply(balance, data):
            changed = balance_change_validity(
                balance_id=balance.pk,
                start_time=data["start_time"],
                end_time=data["end_time"] or data["end_relative"],
                actor=request.user,
                channel=Channel.ADMIN,
                reason=data["reason"],
            )
            others = len({b.pk for b in changed} - {balance.pk})
            text = "Validity changed."
            if others:
                above = count_text(others, "aggregated balance")
                text += f" {above} above it changed with it."
            return text

        return self._form_view(request, pk, BalanceValidityForm, "Change validity", apply)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(AmountAdmin, ReadOnlyAdmin):
    """Immutable: read-only for everyone. A top-up or redemption can be reversed, with a reason."""

    reseller_lookup = f"balance__{_BALANCE_RESELLER}"

    list_display = ["created_at", "balance", "kind", "amount_text", "channel", "voucher", "actor"]
    list_select_related = [
        "balance__wallet__subscription__subscriber",
        "balance__wallet__group",
        "balance__template",
        "actor",
    ]
    list_filter = ["kind", "channel"]
    search_fields = ["=voucher", "=request_id"]
    date_hierarchy = "created_at"
    change_form_template = "admin/wallets/ledgerentry/change_form.html"

    def get_urls(self):
        return [
            path(
                "<int:pk>/reverse/",
                self.admin_site.admin_view(self.reverse_view),
                name="wallets_ledgerentry_reverse",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        entry = self.get_object(request, object_id)
        can_reverse = bool(
            entry
            and entry.kind in REVERSIBLE_KINDS
            and not LedgerEntry.objects.filter(reverses=entry).exists()
            and request.user.has_perm("wallets.reverse_ledgerentry")
        )
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "can_reverse": can_reverse}
        )

    def reverse_entry(self, *, entry: LedgerEntry, reason: str, actor) -> LedgerEntry:
        """The reversal the confirmed form asks for; an app whose rows hang on ledger entries
        registers a subclass that also reverses its side (the cards app blocks the card)."""
        return ledger_entry_reverse(entry_id=entry.pk, reason=reason, actor=actor)

    def reverse_consequence(self, entry: LedgerEntry) -> str:
        """What else the reversal changes, told on the confirmation page (HTML)."""
        return ""

    def reverse_view(self, request, pk):
        if not request.user.has_perm("wallets.reverse_ledgerentry"):
            raise PermissionDenied
        entry = get_object_or_404(
            self.get_queryset(request).select_related("balance__template", "actor"), pk=pk
        )
        form = ReverseEntryForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                reversal = submitted_once(
                    token=posted_token(request),
                    actor=request.user,
                    apply=lambda: self.reverse_entry(
                        entry=entry, reason=form.cleaned_data["reason"], actor=request.user
                    ),
                )
            except AlreadySubmitted as error:
                self.message_user(request, error.message, messages.WARNING)
                return HttpResponseRedirect(
                    reverse("admin:wallets_ledgerentry_change", args=[entry.pk])
                )
            except WalletError as error:
                self.message_user(request, error_message(error), messages.ERROR)
            else:
                amount = amount_text(reversal.amount, entry.balance.template)
                self.message_user(
                    request, f"Reversed: {amount} on {reversal.balance}.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:wallets_ledgerentry_change", args=[reversal.pk])
                )
        return TemplateResponse(
            request,
            "admin/wallets/ledgerentry/reverse.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "original": entry,
                "entry": entry,
                "amount": amount_text(-entry.amount, entry.balance.template),
                "consequence": self.reverse_consequence(entry),
                "title": "Reverse this entry",
                "form": form,
                "submission_token": form_token(request),
            },
        )


_CHANGE_LABELS = {"amount": "Amount", "start_time": "Start", "end_time": "End"}


def _moment(value) -> str:
    if not value:
        return "no end"
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    if timezone.is_naive(moment):
        return str(value)
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"


def changes_text(event: BalanceEvent) -> str:
    """A balance event's recorded change in words: "Amount 177.26 → 187.26 USD", "End
    2026-01-01 00:00 UTC → 2026-02-01 00:00 UTC (extended by P1M)"."""
    changes = event.changes or {}
    parts = []
    for field, label in _CHANGE_LABELS.items():
        if field not in changes:
            continue
        before, after = (list(changes[field]) + [None, None])[:2]
        if field == "amount":
            template = event.balance.template
            parts.append(
                f"{label} {format_amount(before, template.precision)} → "
                f"{amount_text(after, template)}"
            )
        else:
            parts.append(f"{label} {_moment(before)} → {_moment(after)}")
    if changes.get("relative"):
        parts.append(f"extended by {changes['relative']}")
    if changes.get("propagated_from"):
        parts.append(f"with balance #{changes['propagated_from']} below it")
    if changes.get("reverses"):
        parts.append(f"reverses ledger entry #{changes['reverses']}")
    return "; ".join(parts)


@admin.register(BalanceEvent)
class BalanceEventAdmin(ReadOnlyAdmin):
    reseller_lookup = f"balance__{_BALANCE_RESELLER}"
    list_display = ["created_at", "balance", "kind", "changes_text", "reason", "actor", "channel"]
    list_select_related = [
        "balance__wallet__subscription",
        "balance__wallet__group",
        "balance__template",
        "actor",
    ]
    list_filter = ["kind", "channel"]
    search_fields = ["=request_id", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = ["changes_text"]

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "changes_text"]
        return ["changes_text" if f == "changes" else f for f in fields]

    @admin.display(description="Changes")
    def changes_text(self, event):
        return changes_text(event)


@admin.register(ExternalVoucher)
class ExternalVoucherAdmin(AmountAdmin, ReadOnlyAdmin):
    reseller_lookup = f"balance__{_BALANCE_RESELLER}"
    list_display = ["reference", "client", "balance", "amount_text", "created_at"]
    list_select_related = ["client__user", "balance__wallet__subscription", "balance__template"]
    search_fields = ["=reference"]


@admin.register(ApiClient)
class ApiClientAdmin(ResellerScopedAdmin):
    list_display = ["user", "voucher_mode", "created_at"]
    autocomplete_fields = ["user"]
