"""Partners and their managed integration templates (the "certified" integrations).

A template is read each time a postback is rendered, so editing it changes what every
postback configured on that partner sends, with no edit to the postbacks themselves.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from partners.macros import ANY_POST_INSTALL_EVENT
from partners.templating import template_spec_problems


class Partner(models.Model):
    class Kind(models.TextChoices):
        NETWORK = "network", "Media network"
        ANALYTICS = "analytics", "Analytics partner"
        AGENCY = "agency", "Agency"

    slug = models.SlugField(max_length=64, unique=True, help_text="Stable identifier used in exports, e.g. meta.")
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NETWORK)
    website = models.URLField(blank=True)
    description = models.TextField(blank=True)

    class Documentation(models.TextChoices):
        DOCUMENTED = "documented", "Documented by the partner"
        PARTLY_ILLUSTRATIVE = (
            "partly_illustrative",
            "Partly illustrative (from a measurement partner's public template)",
        )
        ILLUSTRATIVE = "illustrative", "Illustrative (no public format)"

    documentation = models.CharField(
        max_length=24,
        choices=Documentation.choices,
        default=Documentation.DOCUMENTED,
        help_text="Where the templates' wire format comes from. Partly illustrative: the partner publishes no "
        "reference, so the format is a measurement partner's public template; illustrative: no public format "
        "at all, the templates are a guess to complete with what the partner gives you.",
    )
    illustrative_note = models.TextField(
        blank=True, help_text="Why the partner is (partly) illustrative, with the sources that were searched."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        # Said wherever the partner is named (choice lists, titles, logs), so no one mistakes it for certified.
        if self.documentation == self.Documentation.DOCUMENTED:
            return self.name
        return f"{self.name} ({self.documentation.replace('_', ' ')})"

    @property
    def illustrative(self) -> bool:
        return self.documentation == self.Documentation.ILLUSTRATIVE

    @property
    def illustrative_warning(self) -> str:
        """What the admin says at the top of every page about a (partly) illustrative partner ("" for others)."""
        if self.documentation == self.Documentation.ILLUSTRATIVE:
            warning = (
                f"{self.name} is illustrative: it publishes no postback format, so its templates are a placeholder "
                f"to complete with what {self.name} gives you (endpoint base and fixed parameters on the partner "
                "configuration), not a certified integration."
            )
        elif self.documentation == self.Documentation.PARTLY_ILLUSTRATIVE:
            warning = (
                f"{self.name} is partly illustrative: it publishes no reference of its postback format, so its "
                "templates follow what a measurement partner publicly sends it. Confirm them with "
                f"{self.name} before relying on them (endpoint base and fixed parameters can be overridden on the "
                "partner configuration)."
            )
        else:
            return ""
        return f"{warning} {self.illustrative_note}".strip()

    @property
    def is_certified(self) -> bool:
        return self.templates.exists()

    def template_for_event(self, event_name: str) -> PartnerTemplate | None:
        """The template used for an event: its own, else the partner's post-install template."""
        templates = {template.event: template for template in self.templates.all()}
        if event_name in templates:
            return templates[event_name]
        if event_name not in ("install", "session_begin"):
            return templates.get(ANY_POST_INSTALL_EVENT)
        return None


class PartnerField(models.Model):
    """A network-specific field: a value each app must supply to use this partner."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(
        max_length=64,
        validators=[RegexValidator(r"^[a-z][a-z0-9_]*$", "Use lower-case letters, digits and underscores.")],
        help_text="Referenced in templates as {fields.<name>}.",
    )
    label = models.CharField(max_length=100)
    required = models.BooleanField(default=True)
    pattern = models.CharField(
        max_length=200,
        blank=True,
        help_text="Regular expression the whole value must match, e.g. ^\\d{15,16}$ for a Facebook App ID.",
    )
    help_text = models.CharField(
        max_length=300, blank=True, help_text="What the value is and where to find it, in words (shown in the admin)."
    )
    example = models.CharField(
        max_length=200, blank=True, help_text="A made-up value in the expected format; it must pass the pattern."
    )
    is_secret = models.BooleanField(default=False, help_text="Masked in the admin and in delivery logs.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["partner", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["partner", "name"], name="partner_field_unique_name")]

    def __str__(self) -> str:
        return f"{self.partner}: {self.label}"

    def clean(self) -> None:
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as error:
                raise ValidationError({"pattern": f"Not a valid regular expression: {error}."}) from None
        if self.example and self.value_problem(self.example):
            raise ValidationError({"example": "The example does not match the pattern."})

    def value_problem(self, value: str) -> str | None:
        """Why a value is refused for this field, or None when it is fine. Said in words (the
        hint and the example), never with the regular expression, which users cannot read."""
        if not value:
            return f"{self.label} is required." if self.required else None
        if self.pattern and not re.fullmatch(self.pattern, value):
            expected = " ".join(
                part
                for part in (self.help_text.strip(), f"For example: {self.example}." if self.example else "")
                if part
            )
            return f"{self.label} {value!r} is not in the expected format." + (f" {expected}" if expected else "")
        return None


class PartnerTemplate(models.Model):
    """How one event is sent to a certified partner, in the template language of
    partners/templating.py (docs/partner-templates.md): declarative data, never code."""

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"

    class Encoding(models.TextChoices):
        QUERY = "query", "Query string (body parameters in the URL)"
        FORM = "form", "Form (application/x-www-form-urlencoded body)"
        JSON = "json", "JSON body"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="templates")
    event = models.CharField(
        max_length=64,
        help_text=f"install, session_begin, or {ANY_POST_INSTALL_EVENT} for every post-install (custom) event.",
    )
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GET)
    url_template = models.CharField(
        "URL",
        max_length=2000,
        help_text="Endpoint; may hold {macro} and {fields.<name>} placeholders in its path and query only.",
    )
    encoding = models.CharField(max_length=8, choices=Encoding.choices, default=Encoding.QUERY)
    query = models.JSONField(
        default=dict,
        blank=True,
        help_text="Parameters always sent in the URL, whatever the encoding: name → value spec.",
    )
    body = models.JSONField(
        default=dict,
        blank=True,
        help_text="A value spec; for the query and form encodings an object of name → spec, e.g. "
        '{"gaid": "{adid}", "ts": {"$macro": "event_time", "transforms": ["unix_ms"]}}.',
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Header name → value spec, e.g. {"Access-Token": "{fields.access_token}"}.',
    )
    reply = models.JSONField(
        default=dict,
        blank=True,
        help_text='How to read the reply: {"retry": [429, "5xx"], "fail": [...], "checks": '
        '[{"path": "code", "not_equals": 0, "outcome": "failed", "message_path": "message"}]}.',
    )
    source = models.URLField(max_length=500, blank=True, help_text="The partner's documentation of this request.")
    event_name_map = models.JSONField(
        default=dict,
        blank=True,
        help_text='Our event name → the partner\'s, used for {event_name}, e.g. {"install": "MOBILE_APP_INSTALL"}.',
    )

    class Meta:
        ordering = ["partner", "event"]
        constraints = [models.UniqueConstraint(fields=["partner", "event"], name="partner_template_unique_event")]

    def __str__(self) -> str:
        return f"{self.partner} · {self.event}"

    def clean(self) -> None:
        field_names = set(self.partner.fields.values_list("name", flat=True)) if self.partner_id else set()
        errors = template_spec_problems(
            url_template=self.url_template,
            encoding=self.encoding,
            query=self.query,
            body=self.body,
            headers=self.headers,
            reply=self.reply,
            field_names=field_names,
        )
        if not isinstance(self.event_name_map, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in self.event_name_map.items()
        ):
            errors.setdefault("event_name_map", []).append("Give an object of event name → partner event name.")
        if errors:
            raise ValidationError(errors)
