"""The document's examples: requests, and the replies they get, on the demo data.

Each request example is named by the Result it gets (`Result 0`, `Result 10`, …); the reply
example of the same name goes with it (docs/rest-api.md, "The OpenAPI document").
"""

from rsgateway.serializers import ADJUST, TOPUP
from wallets.exceptions import Result

from .schemas import BALANCE_INFO

# The demo data (`manage.py seed_demo`): Rose Orig's subscription and her main balance. Every
# example below succeeds or fails as named there, as the demo API client `vms` (external mode).
DEMO_REF = "AccessNumber+5555555555"
DEMO_RESOURCE_ID = 12
DEMO_CLIENT = "vms"

TOPUP_EXAMPLES = {
    "Result 0": {"$": TOPUP, "Amount": "25.00", "Voucher": "ABC12345679"},
    "Result 10": {"$": TOPUP, "Amount": "25.001", "Voucher": "ABC12345680"},
    "Result 40": {
        "$": TOPUP,
        "Amount": "25.00",
        "Voucher": "ABC12345681",
        "StartTime": "2026-01-01T00:00:00Z",
    },
}
ADJUST_EXAMPLES = {
    "Result 0": {
        "$": ADJUST,
        "AdjustType": "1",
        "Amount": "5.00",
        "Reason": "Goodwill credit, ticket 4711",
    },
    "Result 10": {
        "$": ADJUST,
        "AdjustType": "1",
        "Amount": "5.00",
        "Reason": "Goodwill credit, ticket 4711",
        "EndTime": "P4W",
    },
}
# ResultText of the replies to the examples above, where it is not the text in replies.REPLIES.
ADJUST_TEXTS = {
    (422, Result.BAD_DATA): "The balance has no end time to count from: give an absolute "
    "EndTime. (rule E7)",
    (422, Result.NOT_SUPPORTED): "An amount meter cannot be adjusted.",
}
WALLET_EXAMPLE = [
    {
        "$": BALANCE_INFO,
        "ResourceId": 12,
        "TemplateName": "Main balance USD",
        "Class": "simple",
        "Currency": "USD",
        "Amount": "40.00",
        "StartTime": "2026-11-08T00:00:00Z",
        "IsLive": True,
        "IsMain": True,
        "IsPrivate": False,
    },
    {
        "$": BALANCE_INFO,
        "ResourceId": 13,
        "TemplateName": "Monthly data MB",
        "Class": "periodic",
        "Currency": "MB",
        "Amount": "1024",
        "StartTime": "2026-11-08T00:00:00Z",
        "EndTime": "2027-11-08T00:00:00Z",
        "IsLive": True,
        "IsMain": False,
        "IsPrivate": False,
        "AvailableAmount": "1024",
        "IntervalStartTime": "2026-11-08T00:00:00Z",
        "IntervalEndTime": "2026-12-08T00:00:00Z",
    },
]
