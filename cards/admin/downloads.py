"""CSV downloads of cards from the admin: the one-time download of a freshly generated batch (its
PINs are decrypted only then) and the streamed, audited export."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse

from cards.exports import export_with_audit
from cards.models import CardBatch, TopUpCard
from cards.selectors import exceeds
from wallets.models import Channel

DOWNLOADS_SESSION_KEY = "cards_batch_downloads"


def offer_download(request, batch: CardBatch) -> None:
    """Allow this session one download of the batch (PINs are decrypted only then)."""
    allowed = list(request.session.get(DOWNLOADS_SESSION_KEY, []))
    allowed.append(batch.pk)
    request.session[DOWNLOADS_SESSION_KEY] = allowed[-20:]


def download_offered(request, batch: CardBatch) -> bool:
    return batch.pk in request.session.get(DOWNLOADS_SESSION_KEY, [])


def take_download(request, batch: CardBatch) -> bool:
    allowed = list(request.session.get(DOWNLOADS_SESSION_KEY, []))
    if batch.pk not in allowed:
        return False
    allowed.remove(batch.pk)
    request.session[DOWNLOADS_SESSION_KEY] = allowed
    return True


def export_refused(request, cards, *, series: str = "", at_most: int | None = None) -> bool:
    """Refuse (with the way round, as a message) an export too long for one request
    (settings.EXPORT_HTTP_MAX_CARDS): it would be cut off half-way, the client left with part
    of a file. Counts at most the limit + 1 cards, and none when `at_most` (a bound known
    without counting, such as a batch's quantity) is within the limit."""
    limit = settings.EXPORT_HTTP_MAX_CARDS
    if (at_most is not None and at_most <= limit) or not exceeds(cards, limit):
        return False
    command = f"manage.py export_cards --series {series or 'SERIES'} --output FILE"
    messages.error(
        request,
        f"This export has more than {limit:,} cards: a download that long would be cut off by "
        f"the web server's time limit on a request. Export part of it (a batch, or a search "
        f"by serial range), or have it exported on the server with {command} (add --with-pins "
        f"for PINs), or send it to a printing house as a print order.",
    )
    return True


def batch_download(request, batch: CardBatch):
    """The one-time CSV of a freshly generated batch, with PINs for those who may see them."""
    back = HttpResponseRedirect(reverse("admin:cards_cardbatch_change", args=[batch.pk]))
    # Checked before the offer is taken: a refused download stays offered.
    cards = TopUpCard.objects.filter(batch=batch)
    # A batch never has more cards than it was generated with (some may have been deleted).
    if export_refused(request, cards, series=batch.series, at_most=batch.quantity):
        return back
    if not take_download(request, batch):
        messages.error(
            request, "This batch has already been downloaded (a download is offered once)."
        )
        return back
    return csv_response(
        request,
        cards,
        description={"batch": batch.pk, "series": batch.series, "what": "one-time download"},
        filename=f"cards-{batch.first_serial}-{batch.last_serial}.csv",
        with_pins=request.user.has_perm("cards.view_pin"),
    )


def csv_response(request, cards, *, description: dict, filename: str, with_pins: bool):
    """Stream `cards` as the export CSV (cards.exports), audited, never cached.

    The stream runs after the view has returned: it reads the database chosen now (a replica
    inside a stale-tolerant view, common/replicas.py), not the router's default by then."""
    response = StreamingHttpResponse(
        export_with_audit(
            cards.using(cards.db),
            actor=request.user,
            with_pins=with_pins,
            description=description,
            channel=Channel.ADMIN,
        ),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
