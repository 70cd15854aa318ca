# The API clients (and the cache each test starts without) are the ones the wallet service tests
# use: defined once, in tests/wallets/conftest.py.
from tests.wallets.conftest import (  # noqa: F401 - pytest finds fixtures by name here
    _fresh_throttle_counts,
    card_client,
    external_client,
)
