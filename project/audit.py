"""Change history that names each changed setting with its old and new value.

Django's admin history records only which fields changed; users of postback systems ask
"who changed what, and when did my postbacks stop", so the values go into the log too.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models

_MAX_AUDIT_VALUE = 120


class AuditedAdmin(admin.ModelAdmin):
    """Change history that records each changed setting's old and new value, not only its name."""

    audit_masked_fields: tuple[str, ...] = ()
    # Django 6 assumes https for scheme-less URLs; do so now, and silence its warning.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        if add or not form.changed_data:
            return message
        details = [self._describe_change(form, name) for name in form.changed_data if name in form.fields]
        for entry in message:
            if "changed" in entry and "name" not in entry["changed"]:
                entry["changed"]["fields"] = details
                break
        return message

    def _describe_change(self, form: forms.Form, name: str) -> str:
        field = form.fields[name]
        label = str(field.label or name.replace("_", " ").capitalize())
        if name in self.audit_masked_fields or name in getattr(form, "audit_masked_fields", ()):
            return f"{label} (secret, not shown)"
        old = _display(field, form.get_initial_for_field(field, name))
        new = _display(field, form.cleaned_data.get(name))
        return f"{label}: {old} → {new}"


def _display(field: forms.Field, value) -> str:
    if isinstance(field, forms.ModelChoiceField) and value not in (None, ""):
        if not hasattr(value, "_meta"):
            # Among the field's own choices, which the admin scoped to the user's accounts.
            value = field.queryset.filter(pk=value).first() or value
    elif getattr(field, "choices", None) and not isinstance(value, list | tuple):
        choices = {str(key): label for key, label in _flat_choices(field.choices)}
        value = choices.get(str(value), value)
    text = "—" if value in (None, "", [], {}) else str(value)
    if isinstance(value, list | tuple):
        text = ", ".join(str(item) for item in value) or "—"
    return text if len(text) <= _MAX_AUDIT_VALUE else text[: _MAX_AUDIT_VALUE - 1] + "…"


def _flat_choices(choices):
    for key, label in choices:
        if isinstance(label, list | tuple):
            yield from label
        else:
            yield key, label
