"""Which rows a user may see: superusers everything, staff the accounts they belong to."""

from __future__ import annotations

from django.db.models import QuerySet


def visible_to(queryset: QuerySet, user) -> QuerySet:
    if user.is_superuser:
        return queryset
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    path = queryset.model.account_path
    members = f"{path}__members" if path else "members"
    return queryset.filter(**{members: user})
