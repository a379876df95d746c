from __future__ import annotations

import json

from django import forms
from django.utils.functional import cached_property

from partners.macros import MACRO_GROUPS
from partners.models import Partner
from postbacks.models import PartnerConfiguration, PostbackConfiguration

FIELD_INPUT_PREFIX = "field__"
SESSION_BEGIN_RULE = (
    "session_begin is sent at most once per device in each 24-hour period after the install (or the latest "
    "reengagement), never in the first 24 hours, and never for a device with no recorded install."
)


def delivery_method_applies(*, kind: str | None, partner: Partner | None) -> bool:
    """Whether a postback's delivery method means anything: only a certified network's or agency's
    (None: not chosen yet, so it may)."""
    if kind == PostbackConfiguration.Kind.CUSTOM:
        return False
    return partner is None or partner.kind != Partner.Kind.ANALYTICS


def supply_network_data_applies(*, kind: str | None, partner: Partner | None) -> bool:
    """Whether "supply network data" means anything: custom postbacks and analytics partners only
    (networks and agencies see attribution data for what they drove, see rendering.shareable_values)."""
    if kind == PostbackConfiguration.Kind.CUSTOM or partner is None:
        return True
    return partner.kind == Partner.Kind.ANALYTICS


def chosen_object(form: forms.ModelForm, name: str):
    """The object a form is about: its instance's, else the posted or initial choice (an id from
    the URL, e.g. ?app=), looked up among the field's own choices only. The admin scopes those
    to the user's accounts, so another account's id finds nothing, and nothing is built from it."""
    current = getattr(form.instance, f"{name}_id", None)
    if current:
        return getattr(form.instance, name)
    field = form.fields.get(name)
    if not isinstance(field, forms.ModelChoiceField):
        return None
    raw = form.data.get(form.add_prefix(name)) if form.is_bound else form.initial.get(name)
    raw = getattr(raw, "pk", raw)
    try:
        return field.queryset.get(pk=raw) if raw not in (None, "") else None
    except (field.queryset.model.DoesNotExist, ValueError, TypeError):
        return None


def inner_widget(field: forms.Field) -> forms.Widget:
    """The widget that renders the input: the admin wraps a foreign key's in one that adds links."""
    return getattr(field.widget, "widget", field.widget)


class PartnerConfigurationForm(forms.ModelForm):
    """Pick the partner, then fill its network-specific fields (they appear once it is chosen)."""

    class Meta:
        model = PartnerConfiguration
        fields = ["app", "partner", "endpoint_base", "fixed_parameters"]
        labels = {"endpoint_base": "Endpoint base (override)", "fixed_parameters": "Fixed parameters (override)"}
        widgets = {
            "endpoint_base": forms.TextInput(attrs={"placeholder": "https://eu.partner.example/prefix", "size": 60}),
            "fixed_parameters": forms.Textarea(attrs={"placeholder": '{"region": "eu"}', "rows": 3, "cols": 60}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.partner = chosen_object(self, "partner")
        self.audit_masked_fields = []
        if "partner" in self.fields:
            # The page reloads with ?partner= (keeping the app) when one is picked: its fields follow.
            self.fields["partner"].help_text = "Choose the partner: its network-specific fields appear below."
            inner_widget(self.fields["partner"]).attrs["data-reload-on-change"] = "1"
        if "app" in self.fields:
            inner_widget(self.fields["app"]).attrs["data-reload-keep"] = "1"
        if self.partner is None:
            return
        stored = self.instance.field_values or {}
        for field in self.partner.fields.all():
            input_name = FIELD_INPUT_PREFIX + field.name
            # The hint and an example, in words: the pattern itself stays out of sight.
            help_parts = [field.help_text, f"Example: {field.example}" if field.example and not field.is_secret else ""]
            if field.is_secret:
                self.audit_masked_fields.append(input_name)
                if stored.get(field.name):
                    help_parts.append("A value is stored; leave empty to keep it.")
            self.fields[input_name] = forms.CharField(
                label=field.label + ("" if field.required else " (optional)"),
                required=False,
                initial=None if field.is_secret else stored.get(field.name, ""),
                help_text=" ".join(part for part in help_parts if part),
                widget=forms.PasswordInput(render_value=False, attrs={"placeholder": field.example or ""})
                if field.is_secret
                else forms.TextInput(attrs={"placeholder": field.example or ""}),
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
        choices=[
            (title, [(macro.name, f"{{{macro.name}}} — {macro.description}") for macro in macros])
            for title, macros in MACRO_GROUPS
        ],
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "macro-choices"}),
        help_text="Custom: each selected macro is appended to the destination URL as name=value "
        "(a POST also carries them in its JSON body; a signed POST only there). Type in the filter box to find one.",
    )
    remove_signing_secret = forms.BooleanField(
        required=False, label="Remove the stored signing secret", help_text="Requests are then sent unsigned."
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
            "conditions",
            "delay_seconds",
            "retry_attempts",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Kept apart: validation writes the new secret onto the instance.
        self.stored_signing_secret = self.instance.signing_secret or ""
        if "signing_secret" in self.fields:
            field = self.fields["signing_secret"]
            field.widget = forms.PasswordInput(render_value=False)
            # Said here rather than on the model, so that the wording needs no migration.
            field.help_text = (
                "Custom POST, optional: whsec_ followed by base64. Requests then carry a Standard Webhooks signature "
                "(HMAC-SHA256 over id.timestamp.body) for the receiver to verify; every value travels in the signed "
                "JSON body (a GET cannot be signed)."
            )
            if self.instance.signing_secret:
                field.help_text += " A secret is stored; leave empty to keep it."
        if "supply_network_data" in self.fields:
            field = self.fields["supply_network_data"]
            field.label = "Supply network data"
            field.help_text = (
                "Custom postbacks and analytics partners: send attribution data (network, campaign, click…); "
                "unticked, it is sent empty. A network or agency gets it for what it drove only."
            )
        if "event" in self.fields:
            self.fields["event"].help_text = f"{self.fields['event'].help_text} {SESSION_BEGIN_RULE}"
        app = chosen_object(self, "app")
        if app is None:
            return
        events = [(name, name) for name in app.event_names()]
        if "event" in self.fields:
            self.fields["event"] = forms.ChoiceField(
                choices=events, label="Event", help_text=f"Declare custom events on the app first. {SESSION_BEGIN_RULE}"
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
            # For the form's script: which rows apply follows the chosen partner's kind.
            inner_widget(field).attrs["data-partner-kinds"] = json.dumps(
                {str(config.pk): config.partner.kind for config in field.queryset}
            )

    def clean(self):
        cleaned = super().clean()
        if "signing_secret" in self.fields:
            # The stored secret is never sent to the browser, so an empty input means "keep it".
            typed = cleaned.get("signing_secret") or ""
            stored = "" if cleaned.get("remove_signing_secret") else self.stored_signing_secret
            cleaned["signing_secret"] = typed or stored
        return cleaned

    @cached_property
    def changed_data(self) -> list[str]:
        """As Django's, except that the secret changed only when one was typed that differs from the
        stored one, or the stored one was removed: an empty input keeps it, and records nothing."""
        changed = [name for name in super().changed_data if name not in ("signing_secret", "remove_signing_secret")]
        if "signing_secret" in self.fields and self.is_bound:
            stored = self.stored_signing_secret
            typed = self["signing_secret"].data or ""
            removed = self["remove_signing_secret"].field.to_python(self["remove_signing_secret"].data)
            if (typed and typed != stored) or (removed and stored and not typed):
                changed.append("signing_secret")
        return changed
