"""Query helpers shared by the apps' selectors."""

from django.db.models import Count, QuerySet


def top_values(rows: QuerySet, field_name: str, *, top: int) -> list[tuple[str, int]]:
    """The `top` most frequent non-null values of `field_name` among `rows`, with their counts,
    most frequent first (ties by value): the "who fails most" lists of the admin's alerts."""
    return [
        (str(row[field_name]), row["n"])
        for row in rows.filter(**{f"{field_name}__isnull": False})
        .values(field_name)
        .annotate(n=Count("id"))
        .order_by("-n", field_name)[:top]
    ]
