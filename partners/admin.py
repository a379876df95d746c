from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count

from partners.models import Partner, PartnerField, PartnerTemplate
from project.audit import AuditedAdmin


def warn_if_illustrative(request, partner: Partner | None) -> None:
    """Say at the top of the page that a partner's templates are not its documented format."""
    if partner is not None and partner.illustrative_warning:
        messages.warning(request, partner.illustrative_warning)


class PartnerFieldInline(admin.TabularInline):
    model = PartnerField
    extra = 0
    fields = ["position", "name", "label", "required", "pattern", "help_text", "example", "is_secret"]


class PartnerTemplateInline(admin.StackedInline):
    model = PartnerTemplate
    extra = 0
    formfield_overrides = AuditedAdmin.formfield_overrides  # the source URL: https assumed, as in Django 6
    fields = [
        "event",
        "method",
        "url_template",
        "encoding",
        "query",
        "body",
        "headers",
        "reply",
        "source",
        "event_name_map",
    ]


@admin.register(Partner)
class PartnerAdmin(AuditedAdmin):
    """The catalogue of partners. Templates are managed: only superusers edit them, and every
    postback configured on a partner follows its template on the next send."""

    list_display = ["name", "slug", "kind", "certified", "documentation", "field_count", "template_count"]
    list_filter = ["kind", "documentation"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [PartnerFieldInline, PartnerTemplateInline]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        warn_if_illustrative(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_fields=Count("fields", distinct=True), _templates=Count("templates", distinct=True))
        )

    @admin.display(boolean=True, description="certified")
    def certified(self, partner: Partner) -> bool:
        return partner._templates > 0

    @admin.display(description="network-specific fields", ordering="_fields")
    def field_count(self, partner: Partner) -> int:
        return partner._fields

    @admin.display(description="event templates", ordering="_templates")
    def template_count(self, partner: Partner) -> int:
        return partner._templates
