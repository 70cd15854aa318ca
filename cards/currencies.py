"""The currencies a card may be in: ISO 4217 codes that a balance template uses (docs/cards.md,
"Generate Top-Up Cards"). A card redeems only into a balance of its currency, so a card in a
currency no template has, or in a unit such as MIN, could never be redeemed."""

from wallets.models import BalanceTemplate

# ISO 4217 alphabetic codes of money in use (the list of 2025), without the precious metals,
# the testing code, the bond-market units and "no currency" (XAU, XTS, XBA…, XXX): no top-up is
# paid in those.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XDR
    XOF XPF YER ZAR ZMW ZWG
    """.split()
)


def card_currencies() -> list[str]:
    """The ISO 4217 currencies of the balance templates, sorted: what a card may be in."""
    used = BalanceTemplate.objects.order_by().values_list("currency", flat=True).distinct()
    return sorted({code.strip().upper() for code in used} & ISO_4217)


def currency_refusal(currency: str) -> str | None:
    """Why cards cannot be made in `currency` (already upper-case), or None."""
    if currency not in ISO_4217:
        return f"{currency or 'This'} is not an ISO 4217 currency code such as USD or EUR."
    allowed = card_currencies()
    if currency in allowed:
        return None
    if not allowed:
        return (
            f"No balance template is in {currency}, so no subscriber could redeem these cards: "
            "create a balance template in the currency first."
        )
    return (
        f"No balance template is in {currency}, so no subscriber could redeem these cards: "
        f"choose {', '.join(allowed)}."
    )
