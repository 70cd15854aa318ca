"""The event-sourced view of the cards: every change of what a card adds to liability, as a
movement (reports/README.md, "Movements").

A card's state over time is rebuilt from its row (creation, redemption and reversal times, its
current expiry, reseller and flag) and its audit events (cards/events.py, read through its key
classes only): Mass Edit's `edited` / `blocked` / `unblocked` events give a field's value before
each change (`old`), a `deleted` event the card as it was when it went. A field's value at an
instant is the `old` of its earliest change at or after the instant, else the value the card has
now (or had when deleted). From that state every instant at which the card enters or leaves
liability, or changes reseller or flag while in it, is a movement:

| kind        | when                                                   | effect on liability     |
|-------------|--------------------------------------------------------|-------------------------|
| issued      | the card is created                                    | + face value            |
| redeemed    | a subscriber redeems it                                | −                       |
| reversed    | an operator reverses its redemption                    | + (owed again, blocked) |
| breakage    | its expiry passes unredeemed                           | −                       |
| written_off | Mass Edit moves its expiry to now or earlier           | −                       |
| reinstated  | Mass Edit gives an expired card a later expiry         | +                       |
| deleted     | Delete all deletes it while owed                       | −                       |
| moved       | Mass Edit moves it to another reseller while owed      | − old, + new reseller   |
| blocked     | blocked while owed (stays in liability, "of which")    | − unblocked, + blocked  |
| unblocked   | unblocked while owed                                   | − blocked, + unblocked  |
| delivered   | its box is recorded delivered while owed               | − dormant, + not        |

Liability as of an instant is the sum of every movement before it; breakage and the roll-forward
are sums of movements in a period. Cards with no block, expiry or reseller change since the
window's start are read set-based (one aggregate per kind); the others, and the deleted cards,
are replayed one by one from their events (a few per day in practice).

A card generated dormant (docs/printing.md) is dormant until its `delivered` event: the flag a
movement carries beside `blocked`. Delivery only flips it, so a delivered card with no other
change stays in the set-based path (a box wakes thousands of cards at once).

Modules: `window.py` the vocabulary (kinds, keys, the window, the totals), `unchanged.py` the
set-based movements, `replay.py` one card walked through the window, `replayed.py` the cards
to replay read from their rows and events, `view.py` `movements()`, which puts them together.
"""
