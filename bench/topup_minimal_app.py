"""Baseline for bench/topup.py: a minimal DRF view that parses the same XML and redeems a card in
one SQL statement (conditional card UPDATE … RETURNING, balance credit, ledger insert).

Not the product: no authentication, no throttling, no audit, no retry record, no rule checks.
Served by gunicorn with the same settings as the product (see bench/topup.py), and its statement
prepared the way the product's are (`wallets.sql.hot_cursor`).
"""

import os

from defusedxml import ElementTree
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.topup_minimal_settings")
application = get_wsgi_application()

from django.http import HttpResponse  # noqa: E402
from django.urls import re_path  # noqa: E402
from rest_framework.parsers import BaseParser  # noqa: E402
from rest_framework.renderers import BaseRenderer  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from cards import pins  # noqa: E402
from wallets.sql import hot_cursor  # noqa: E402

REDEEM_SQL = """
WITH target AS (
    SELECT b.id AS balance_id, s.subscriber_id
    FROM wallets_balance b
    JOIN wallets_wallet w ON w.id = b.wallet_id
    JOIN subscribers_subscription s ON s.id = w.subscription_id
    JOIN subscribers_accessnumber a ON a.subscription_id = s.id
    WHERE a.number = %(number)s AND b.resource_id = %(resource_id)s
), card AS (
    UPDATE cards_topupcard c SET activated_at = now(), activated_by_id = target.subscriber_id
    FROM target
    WHERE c.pin_digest = %(digest)s AND c.activated_at IS NULL AND NOT c.blocked
      AND c.expires_at > now() AND c.amount = %(amount)s
    RETURNING c.amount, target.balance_id
), credit AS (
    UPDATE wallets_balance b SET amount = b.amount + card.amount
    FROM card WHERE b.id = card.balance_id
    RETURNING b.id, card.amount
)
INSERT INTO wallets_ledgerentry
    (balance_id, amount, kind, channel, voucher, reason, request_id, created_at)
SELECT id, amount, 'redemption', 'rest', '', '', '', now() FROM credit
RETURNING id
"""
OK = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<MtxResponse><RouteId>1</RouteId>'
    b"<Result>0</Result><ResultText>OK</ResultText></MtxResponse>"
)
FAILED = OK.replace(b"<Result>0</Result>", b"<Result>11</Result>").replace(b">OK<", b">Failed<")


class XMLParser(BaseParser):
    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        root = ElementTree.fromstring(stream.read(64 * 1024 + 1), forbid_dtd=True)
        return {child.tag: (child.text or "").strip() for child in root}


class XMLRenderer(BaseRenderer):
    media_type = "application/xml"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class MinimalTopup(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = []
    parser_classes = [XMLParser]
    renderer_classes = [XMLRenderer]

    def put(self, request, number, resource_id):
        # Prepared, as the product's statements are (wallets/sql.py): Django's psycopg connection
        # prepares nothing by itself.
        with hot_cursor() as cursor:
            cursor.execute(
                REDEEM_SQL,
                {
                    "number": number,
                    "resource_id": int(resource_id),
                    "digest": pins.pin_digest(pins.normalize_pin(request.data["Voucher"])),
                    "amount": request.data["Amount"],
                },
            )
            row = cursor.fetchone()
        if row is None:
            return HttpResponse(FAILED, status=409, content_type="application/xml")
        return HttpResponse(OK, content_type="application/xml")


urlpatterns = [
    re_path(
        r"^rsgateway/data/v3/subscription/AccessNumber\+(?P<number>[0-9]+)/wallet/"
        r"(?P<resource_id>[0-9]+)/topup$",
        MinimalTopup.as_view(),
    )
]
