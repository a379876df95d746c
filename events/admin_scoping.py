"""Admin base classes that confine every list, page and picker to the user's accounts, and the
one that makes a record read-only."""

from __future__ import annotations

from django.contrib import admin

from events.models import AccountScoped
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


class ReadOnlyAdminMixin:
    """Records the product writes (events, devices, clicks, deliveries, attempts): staff read
    them, nobody edits them by hand."""

    show_full_result_count = False  # no COUNT(*) over the whole table on every page

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
