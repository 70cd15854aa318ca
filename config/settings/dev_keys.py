"""Development-only PIN keys, published in this repository: production refuses them."""

DEV_PIN_DIGEST_KEY = "local-dev-digest-key-not-secret"
DEV_PIN_ENCRYPTION_KEY = "dev1:ZGV2LW9ubHktcGluLWVuY3J5cHRpb24ta2V5LTMyYiE"
