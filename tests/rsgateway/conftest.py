# The API tests call with the API clients the wallet service tests build, from a cache each
# test starts empty: one definition of each, in tests/wallets/conftest.py.
from tests.wallets.conftest import (  # noqa: F401 - pytest finds fixtures by name here
    _fresh_throttle_counts,
    card_client,
    external_client,
)
