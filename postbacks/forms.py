from __future__ import annotations

from django import forms

from events.models import App
from partners.macros import MACROS
from partners.models import Partner
from postbacks.models import PartnerConfiguration, PostbackConfiguration

FIELD_INPUT_PREFIX = "field__"


def _chosen(form: forms.ModelForm, name: str, model):
    """The object a form is about: its instance's, else the posted or initial choice."""
    current = getattr(form.instance, f"{name}_id", None)
    if current:
        return getattr(form.instance, name)
    raw = form.data.get(form.add_prefix(name)) if form.is_bound else form.initial.get(name)
    if hasattr(raw, "pk"):
        return raw
    try:
        return model._default_manager.get(pk=raw) if raw not in (None, "") else None
    except (model.DoesNotExist, ValueError, TypeError):
        return None


class PartnerConfigurationForm(forms.ModelForm):
    """Pick the partner, then fill its network-specific fields (they appear once it is chosen)."""

    class Meta:
        model = PartnerConfiguration
        fields = ["app", "partner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.partner = _chosen(self, "partner", Partner)
        self.audit_masked_fields = []
        if "partner" in self.fields:
            self.fields["partner"].help_text = "Choose the partner and save: its network-specific fields appear below."
        if self.partner is None:
            return
        stored = self.instance.field_values or {}
        for field in self.partner.fields.all():
            input_name = FIELD_INPUT_PREFIX + field.name
            help_parts = [field.help_text, f"Format: {field.pattern}" if field.pattern else ""]
            if field.is_secret:
                self.audit_masked_fields.append(input_name)
                if stored.get(field.name):
                    help_parts.append("A value is stored; leave empty to keep it.")
            self.fields[input_name] = forms.CharField(
                label=field.label + ("" if field.required else " (optional)"),
                required=False,
                initial=None if field.is_secret else stored.get(field.name, ""),
                help_text=" ".join(part for part in help_parts if part),
                widget=forms.PasswordInput(render_value=False) if field.is_secret else forms.TextInput,
            )

    def clean(self):
        cleaned = super().clean()
        partner = cleaned.get("partner") or self.partner
        if partner is None:
            return cleaned
        if partner != self.partner:
            raise forms.ValidationError(f"Fill in the network-specific fields of {partner} below, then save again.")
        stored = self.instance.field_values or {}
        values = {}
        for field in partner.fields.all():
            input_name = FIELD_INPUT_PREFIX + field.name
            value = (cleaned.get(input_name) or "").strip()
            if field.is_secret and not value:
                value = stored.get(field.name, "")
            problem = field.value_problem(value)
            if problem:
                self.add_error(input_name, problem)
            elif value:
                values[field.name] = value
        self.instance.field_values = values
        return cleaned

    def _update_errors(self, errors):
        # The model repeats the per-field checks on `field_values`, which is no input of this
        # form: show its messages once, as form errors, instead of failing on the unknown name.
        error_dict = getattr(errors, "error_dict", None)
        if error_dict and "field_values" in error_dict:
            messages = error_dict.pop("field_values")
            if not any(name.startswith(FIELD_INPUT_PREFIX) for name in self.errors):
                error_dict.setdefault("__all__", []).extend(messages)
        super()._update_errors(errors)


class PostbackConfigurationForm(forms.ModelForm):
    macros = forms.MultipleChoiceField(
        choices=[(macro.name, f"{{{macro.name}}} — {macro.description}") for macro in MACROS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Custom: each selected macro is appended to the destination URL as name=value.",
    )

    class Meta:
        model = PostbackConfiguration
        fields = [
            "app",
            "event",
            "kind",
            "status",
            "title",
            "match_event",
            "partner_configuration",
            "partner_event_name",
            "delivery_method",
            "destination_url",
            "method",
            "macros",
            "signing_secret",
            "supply_network_data",
            "delay_seconds",
            "retry_attempts",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "signing_secret" in self.fields:
            field = self.fields["signing_secret"]
            field.widget = forms.PasswordInput(render_value=False)
            if self.instance.signing_secret:
                field.help_text += " A secret is stored; leave empty to keep it."
        app = _chosen(self, "app", App)
        if app is None:
            return
        events = [(name, name) for name in app.event_names()]
        if "event" in self.fields:
            self.fields["event"] = forms.ChoiceField(
                choices=events, label="Event", help_text="Declare custom events on the app first."
            )
        if "match_event" in self.fields:
            self.fields["match_event"] = forms.ChoiceField(
                choices=[("", "— no matching —"), *events],
                required=False,
                label="Event matching",
                help_text="Optional: fire on this other event instead of the one selected.",
            )
        if "partner_configuration" in self.fields:
            field = self.fields["partner_configuration"]
            field.queryset = field.queryset.filter(app=app).select_related("partner", "app")

    def clean_signing_secret(self) -> str:
        # The stored secret is never sent to the browser, so an empty input means "keep it".
        return self.cleaned_data.get("signing_secret") or self.instance.signing_secret or ""
