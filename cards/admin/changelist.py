"""A changelist for large tables: the Advanced Search instead of list filters, a page size
choice, and counts that never scan a whole table."""

from urllib.parse import urlencode

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from cards.filters import SEARCH_FIELDS
from cards.selectors import card_count, card_search

PAGE_SIZES = (20, 50, 100, 500)
PER_PAGE_VAR = "per_page"


def page_size(request) -> int:
    try:
        size = int(request.GET.get(PER_PAGE_VAR, PAGE_SIZES[0]))
    except ValueError:
        return PAGE_SIZES[0]
    return size if size in PAGE_SIZES else PAGE_SIZES[0]


def search_params(query) -> dict[str, str]:
    """The Advanced Search part of a query string (never a PIN: only its `pin_ref`)."""
    return {name: query.get(name) for name in SEARCH_FIELDS if query.get(name) not in (None, "")}


def selection_params(query) -> dict[str, str]:
    """What selects the cards: the search, and a PIN typed into a URL by hand, which the search
    refuses (a person searches by PIN through the form only) rather than ignores."""
    params = search_params(query)
    if query.get("pin") not in (None, ""):
        params["pin"] = query.get("pin")
    return params


def search_query_string(query) -> str:
    params = search_params(query)
    return "?" + urlencode(params) if params else ""


# Paging goes this deep at most: an OFFSET of a million rows reads a million index entries.
# Past it, the operator narrows the search instead.
MAX_BROWSABLE_ROWS = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most `COUNT_CAP` rows, then shows the planner's estimate (`count_exact` False);
    pages go no deeper than MAX_BROWSABLE_ROWS."""

    @cached_property
    def num_pages(self):
        return min(super().num_pages, max(1, MAX_BROWSABLE_ROWS // self.per_page))

    @property
    def truncated(self) -> bool:
        return self.count > self.num_pages * self.per_page

    @cached_property
    def _card_count(self):
        return card_count(self.object_list)

    @cached_property
    def count(self):
        return self._card_count.value

    @property
    def count_exact(self) -> bool:
        return self._card_count.exact


class EstimatingChangeList(ChangeList):
    """Django's ChangeList with a page-size choice and no `COUNT(*)` of a whole table."""

    def get_results(self, request):
        self.list_per_page = page_size(request)
        super().get_results(request)

    def get_filters_params(self, params=None):
        lookup = super().get_filters_params(params)
        lookup.pop(PER_PAGE_VAR, None)
        return lookup

    @property
    def page_size_links(self):
        return [
            (size, self.get_query_string({PER_PAGE_VAR: size}, remove=["p"])) for size in PAGE_SIZES
        ]

    @property
    def row_range(self) -> tuple[int, int]:
        if not self.result_count:
            return (0, 0)
        first = (self.page_num - 1) * self.list_per_page + 1
        return (first, first + len(self.result_list) - 1)


class CardChangeList(EstimatingChangeList):
    """The top-up cards changelist: the Advanced Search (`CardFilter`) selects the rows."""

    def get_filters_params(self, params=None):
        lookup = super().get_filters_params(params)
        for name in (*SEARCH_FIELDS, "pin"):
            lookup.pop(name, None)
        return lookup

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        self.search = card_search(
            filters=selection_params(request.GET),
            user=request.user,
            session=request.session,
            queryset=queryset,
        )
        self.search_query = search_query_string(request.GET)
        if not self.search.is_valid() or getattr(request, "card_search_stopped", False):
            return queryset.none()
        return self.search.qs
