"""The Mtx body parser reads at most 64 KiB + 1 bytes and keeps values as the text sent."""

import io

import pytest

from rsgateway.parsers import BODY_LIMIT, MtxJSONParser, MtxXMLParser
from rsgateway.serializers import TOPUP
from wallets.exceptions import Malformed


class View:
    mtx_request = TOPUP


class Request:
    def __init__(self, length=None):
        self.META = {} if length is None else {"CONTENT_LENGTH": str(length)}


class CountingStream(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.asked = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


def context(length=None):
    return {"view": View(), "request": Request(length)}


def test_a_huge_body_is_read_only_up_to_the_limit_plus_one_byte():
    stream = CountingStream(b"<" * (10 * BODY_LIMIT))

    with pytest.raises(Malformed, match="64 KiB"):
        MtxXMLParser().parse(stream, "application/xml", context())

    assert stream.asked == [BODY_LIMIT + 1]


def test_a_declared_length_over_the_limit_is_refused_without_reading():
    stream = CountingStream(b"")

    with pytest.raises(Malformed, match="64 KiB"):
        MtxJSONParser().parse(stream, "application/json", context(BODY_LIMIT + 1))

    assert stream.asked == []


@pytest.mark.parametrize(
    ("parser", "data"),
    [
        (
            MtxXMLParser(),
            b"<MtxRequestSubscriberTopupBalance><Amount> 25.00 </Amount>"
            b"<Voucher>000123</Voucher><!-- note --></MtxRequestSubscriberTopupBalance>",
        ),
        (
            MtxJSONParser(),
            b'{"$": "MtxRequestSubscriberTopupBalance", "Amount": 25.00, "Voucher": "000123"}',
        ),
    ],
)
def test_values_are_kept_as_the_text_sent(parser, data):
    message = parser.parse(io.BytesIO(data), None, context(len(data)))

    assert message.name == TOPUP
    assert message.fields == {"Amount": "25.00", "Voucher": "000123"}


def test_an_external_entity_is_never_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    data = (
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<MtxRequestSubscriberTopupBalance><Voucher>&x;</Voucher>"
        "</MtxRequestSubscriberTopupBalance>"
    ).encode()

    with pytest.raises(Malformed) as raised:
        MtxXMLParser().parse(io.BytesIO(data), None, context())

    assert "top secret" not in raised.value.message
