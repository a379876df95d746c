"""Admin base classes that confine every list, page and picker to the user's accounts, and the
one that makes a record read-only."""

from __future__ import annotations

from functools import cached_property

from django.contrib import admin
from django.core.paginator import Paginator

from events.models import BUILTIN_EVENTS, AccountScoped, CustomEvent
from events.scoping import visible_to
from project.audit import AuditedAdmin


class AccountScopedMixin:
    """For ModelAdmins and inlines of AccountScoped models.

    Rows of other accounts are absent from lists, their URLs answer "does not exist", and
    foreign-key pickers (selects, autocomplete and raw-id lookups all go through the related
    admin's or this queryset) offer only the user's own rows.
    """

    def get_queryset(self, request):
        return visible_to(super().get_queryset(request), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if issubclass(related, AccountScoped):
            base = kwargs.get("queryset")
            kwargs["queryset"] = visible_to(related._default_manager.all() if base is None else base, request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ScopedModelAdmin(AccountScopedMixin, AuditedAdmin):
    pass


class ScopedTabularInline(AccountScopedMixin, admin.TabularInline):
    pass


class CappedPaginator(Paginator):
    """Counts the rows a list shows only up to `cap`: counting millions of events or
    deliveries on every page took seconds, and nobody pages that far (they filter or search).
    The list then says "more than 10,000" (templates admin/<app>/pagination.html)."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap


class VisibleRelatedFilter(admin.RelatedFieldListFilter):
    """A filter on a related row offering the related rows the user may see, read from that
    (small) table; Django's RelatedOnlyFieldListFilter reads them from the listed (big) table
    with a DISTINCT over all of it."""

    def field_choices(self, field, request, model_admin):
        related = field.remote_field.model
        rows = self.choices_queryset(related._default_manager.all(), request)
        return [(row.pk, str(row)) for row in rows.order_by(*related._meta.ordering or ["pk"])]

    def choices_queryset(self, rows, request):
        return visible_to(rows, request.user) if issubclass(rows.model, AccountScoped) else rows


class EventNameFilter(admin.SimpleListFilter):
    """The event names the user's apps declare (built-in and custom), read from the apps'
    declarations rather than by a DISTINCT over every stored event."""

    title = "event"
    parameter_name = "event_name"
    lookup = "name"  # the event's name, from the listed model

    def lookups(self, request, model_admin):
        custom = visible_to(CustomEvent.objects.all(), request.user).values_list("name", flat=True).distinct()
        return [(name, name) for name in sorted({*BUILTIN_EVENTS, *custom})]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.lookup: self.value()}) if self.value() else queryset


class ReadOnlyAdminMixin:
    """Records the product writes (events, devices, clicks, deliveries, attempts): staff read
    them, nobody edits them by hand. There are millions of them: their lists count no more
    than they show, and their filters read their choices from the small tables."""

    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    paginator = CappedPaginator

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
