"""Partner configurations and postback configurations (what to send, where, when)."""

from __future__ import annotations

import base64
import binascii
import uuid
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from events.models import AccountScoped, App, Device, Event
from partners.macros import MACRO_NAMES, template_problems
from partners.models import Partner
from postbacks.conditions import conditions_problems
from postbacks.destinations import destination_problem
from postbacks.signing import signing_problems

DELAY_CHOICES = [
    (0, "Real time"),
    (30, "30 seconds"),
    (60, "1 minute"),
    (120, "2 minutes"),
    (300, "5 minutes"),
    (600, "10 minutes"),
]
RETRY_CHOICES = [(0, "Do not retry")] + [(n, f"{n} attempt{'s' if n > 1 else ''}") for n in range(1, 11)]


def endpoint_base_problem(base: str, *, resolve: bool = True) -> str | None:
    """Why an endpoint base is refused, or None (an empty one keeps the template's endpoint).
    A base is fixed text: scheme, host, optional port and path prefix, under the rules of
    custom destinations."""
    if not base:
        return None
    if "{" in base or "}" in base:
        return "The endpoint base is fixed text: no {placeholders}."
    problem = destination_problem(base, resolve=resolve)
    if problem:
        return problem
    parts = urlsplit(base)
    if parts.query or parts.fragment or "?" in base or "#" in base:
        return "The endpoint base is a scheme, host and optional path prefix only: no query or fragment."
    return None


def fixed_parameters_problem(parameters: object) -> str | None:
    if not isinstance(parameters, dict) or not all(
        isinstance(name, str) and name.strip() and isinstance(value, str) for name, value in parameters.items()
    ):
        return "Give an object of parameter name → text value."
    return None


class PartnerConfiguration(AccountScoped):
    """An app's connection to a certified partner, with the partner's network-specific fields."""

    account_path = "app__account"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="partner_configurations")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="configurations")
    field_values = models.JSONField("network-specific fields", default=dict, blank=True)
    endpoint_base = models.CharField(
        max_length=500,
        blank=True,
        help_text="Optional: send to this scheme, host and path prefix instead of the template's, e.g. "
        "https://eu.partner.example/api (the template's path and query follow it).",
    )
    fixed_parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Optional: parameter name → value added to every request (in the query or the body, as the "
        "template's encoding says), replacing the template's parameter of the same name.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["app", "partner__name"]
        constraints = [models.UniqueConstraint(fields=["app", "partner"], name="partner_configuration_unique")]

    def __str__(self) -> str:
        return f"{self.partner} for {self.app.name}" if self.app_id and self.partner_id else "Partner configuration"

    def clean(self) -> None:
        if not self.partner_id:
            return
        if not isinstance(self.field_values, dict):
            raise ValidationError({"field_values": "Give an object of field name → value."})
        fields = {field.name: field for field in self.partner.fields.all()}
        problems = []
        unknown = sorted(set(self.field_values) - set(fields))
        if unknown:
            problems.append(
                f"{self.partner} has no field {', '.join(unknown)} (its fields: {', '.join(fields) or 'none'})."
            )
        for name, field in fields.items():
            value = self.field_values.get(name, "")
            if not isinstance(value, str):
                problems.append(f"{field.label} must be text.")
                continue
            problem = field.value_problem(value.strip())
            if problem:
                problems.append(problem)
        errors: dict[str, list[str]] = {}
        if problems:
            errors["field_values"] = problems
        base_problem = endpoint_base_problem(self.endpoint_base)
        if base_problem:
            errors["endpoint_base"] = [base_problem]
        parameter_problem = fixed_parameters_problem(self.fixed_parameters)
        if parameter_problem:
            errors["fixed_parameters"] = [parameter_problem]
        if errors:
            raise ValidationError(errors)


class PostbackConfiguration(AccountScoped):
    account_path = "app__account"

    class Kind(models.TextChoices):
        CERTIFIED = "certified", "Certified (partner template)"
        CUSTOM = "custom", "Custom (destination URL)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"

    class Method(models.TextChoices):
        GET = "GET", "GET"
        POST = "POST", "POST"

    class DeliveryMethod(models.TextChoices):
        ALL = "all", "All"
        NETWORK_ONLY = "network_only", "Network Only"
        NETWORK_AND_AGENCY = "network_and_agency", "Network + Agency"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="postback_configurations")
    event = models.CharField(max_length=64, help_text="install, session_begin, or a custom event of the app.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    partner_configuration = models.ForeignKey(
        PartnerConfiguration,
        on_delete=models.CASCADE,
        related_name="postbacks",
        null=True,
        blank=True,
        help_text="Certified: the partner this postback goes to.",
    )
    partner_event_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="Certified: the partner's own name for this event, overriding the template's mapping.",
    )
    destination_url = models.CharField(
        max_length=2000,
        blank=True,
        help_text="Custom: where to send, e.g. https://warehouse.example.com/in?event={event_name}.",
    )
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GET)
    macros = models.JSONField(
        default=list, blank=True, help_text="Custom: macros appended to the destination URL as query parameters."
    )
    signing_secret = models.CharField(
        max_length=100,
        blank=True,
        help_text="Custom, optional: whsec_ followed by base64. Requests then carry a Standard Webhooks "
        "signature (HMAC-SHA256 over id.timestamp.body) for the receiver to verify.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    match_event = models.CharField(
        "event matching",
        max_length=64,
        blank=True,
        help_text="Optional: fire on this other event of the app instead of the one selected.",
    )
    title = models.CharField(max_length=200, blank=True)
    supply_network_data = models.BooleanField(
        "supply network data to analytics partner",
        default=False,
        help_text="True sends attribution-level data (network, campaign, click…); false leaves it empty.",
    )
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text="Optional: rules on macro values that must all hold for the postback to fire, e.g. "
        '[{"macro": "country", "op": "in", "value": ["US", "CA"]}, {"macro": "revenue", "op": "greater_than", '
        '"value": 0}]. Operators: equals, not_equals, contains, in, not_in (text, any case), greater_than, '
        "less_than (numbers). An event that fails one is a skipped delivery whose reason names the condition.",
    )
    delay_seconds = models.PositiveIntegerField("delivery delay", choices=DELAY_CHOICES, default=0)
    retry_attempts = models.PositiveSmallIntegerField(
        choices=RETRY_CHOICES, default=3, validators=[MinValueValidator(0), MaxValueValidator(10)]
    )
    delivery_method = models.CharField(
        max_length=24,
        choices=DeliveryMethod.choices,
        default=DeliveryMethod.NETWORK_ONLY,
        help_text="Certified: All sends every event (attribution data only for this network's installs); "
        "Network Only sends only what this network won; Network + Agency adds its agencies' trackers.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["app", "event", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner_configuration", "event"], name="postback_one_certified_per_partner_event"
            ),
            models.CheckConstraint(
                condition=models.Q(retry_attempts__lte=10), name="postback_retry_attempts_at_most_10"
            ),
        ]

    def __str__(self) -> str:
        if self.title:
            return self.title
        target = self.partner_configuration.partner.name if self.partner_configuration_id else "custom"
        return f"{self.event} → {target}"

    @property
    def fires_on(self) -> str:
        """The event name that triggers this postback (event matching wins)."""
        return self.match_event or self.event

    @property
    def partner(self) -> Partner | None:
        return self.partner_configuration.partner if self.partner_configuration_id else None

    @property
    def partner_label(self) -> str:
        """The partner's slug, or "custom": how logs and metrics name where a postback goes."""
        partner = self.partner
        return partner.slug if partner else "custom"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def refuse(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if self.delay_seconds not in dict(DELAY_CHOICES):
            refuse("delay_seconds", "Choose real time, 30 s, 1, 2, 5 or 10 minutes.")
        if self.retry_attempts is not None and not 0 <= self.retry_attempts <= 10:
            refuse("retry_attempts", "Retry attempts must be between 0 (do not retry) and 10.")
        if self.app_id:
            events = self.app.event_names()
            if self.event not in events:
                refuse(
                    "event", f"{self.event!r} is not an event of {self.app.name}: declare it as a custom event first."
                )
            if self.match_event:
                if self.match_event not in events:
                    refuse("match_event", f"{self.match_event!r} is not an event of {self.app.name}.")
                elif self.match_event == self.event:
                    refuse("match_event", "Event matching names the event itself; leave it empty instead.")
        for problem in conditions_problems(self.conditions):
            refuse("conditions", problem)
        if self.kind == self.Kind.CERTIFIED:
            self._clean_certified(refuse)
        elif self.kind == self.Kind.CUSTOM:
            self._clean_custom(refuse)
        else:
            refuse("kind", "Choose certified or custom.")
        if self.signing_secret:
            problems = signing_problems(kind=self.kind, method=self.method, destination_url=self.destination_url)
            for field, message in problems.items():
                refuse(field, message)
        if errors:
            raise ValidationError(errors)

    def _clean_certified(self, refuse) -> None:
        if not self.partner_configuration_id:
            refuse("partner_configuration", "A certified postback needs a partner configuration of this app.")
            return
        if self.app_id and self.partner_configuration.app_id != self.app_id:
            refuse("partner_configuration", "That partner configuration belongs to another app.")
            return
        partner = self.partner_configuration.partner
        if self.event and partner.template_for_event(self.fires_on) is None:
            refuse("event", f"{partner} has no certified template for {self.fires_on}; use a custom postback.")

    def _clean_custom(self, refuse) -> None:
        if not self.destination_url:
            refuse("destination_url", "A custom postback needs a destination URL.")
        else:
            problem = destination_problem(self.destination_url)
            if problem:
                refuse("destination_url", problem)
            for placeholder_problem in template_problems(self.destination_url):
                refuse("destination_url", placeholder_problem)
        if not isinstance(self.macros, list) or not all(isinstance(name, str) for name in self.macros):
            refuse("macros", "Give a list of macro names.")
        else:
            unknown = [name for name in self.macros if name not in MACRO_NAMES]
            if unknown:
                refuse("macros", f"Unknown macro {', '.join(unknown)}; see docs/macros.md for the list.")
            if len(set(self.macros)) != len(self.macros):
                refuse("macros", "A macro is selected twice.")
        if self.signing_secret:
            try:
                key = base64.b64decode(self.signing_secret.removeprefix("whsec_"), validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not self.signing_secret.startswith("whsec_") or len(key) < 24:
                refuse("signing_secret", "Use whsec_ followed by base64 of at least 24 random bytes.")


class Delivery(AccountScoped):
    """One postback an event produced for one configuration: the outbox row and its log.

    The database is the source of truth: workers claim due rows with a lease; a lost task or
    a killed worker only delays a delivery until its lease runs out.

    On PostgreSQL deliveries are partitioned by their day-stamped ids, as their attempts are
    (postbacks/partitions.py), so a day of both goes by dropping its partitions. A unique index
    there must include the id, so none holds a rule across days: an event's deliveries are
    made once, in the transaction that stores the event (postbacks/ingest.py), and SessionBegin's
    one per period is SessionPeriodClaim's.
    """

    account_path = "app__account"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    # Random (122 bits), so unique without a unique index, which could not span the partitions.
    delivery_id = models.UUIDField(
        db_index=True,
        default=uuid.uuid4,
        editable=False,
        help_text="Sent on every attempt; receivers deduplicate by it.",
    )
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="deliveries")
    configuration = models.ForeignKey(PostbackConfiguration, on_delete=models.CASCADE, related_name="deliveries")
    # No database constraint: events are partitioned by day on PostgreSQL, and a foreign key
    # would keep a day from being dropped; retention deletes an event's deliveries first.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False)
    # The event's name (an event never changes), for the log's filter: read through the
    # event, each delivery would probe every day's partition of events (4.7 s at 10 million).
    # None on deliveries made before it was stored (postbacks/selectors.py reads them too).
    event_name = models.CharField("event", max_length=64, null=True, editable=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    skip_reason = models.CharField(max_length=300, blank=True)
    withheld = models.CharField(
        max_length=300,
        blank=True,
        help_text="Device IDs the tracking and consent policy kept out of the request, and why.",
    )
    # SessionBegin: which 24-hour period after the anchor this delivery claimed (SessionPeriodClaim).
    session_period = models.PositiveIntegerField(null=True, blank=True)
    method = models.CharField(max_length=8, blank=True)
    url = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)
    max_attempts = models.PositiveSmallIntegerField(default=1, help_text="1 + the configuration's retry attempts.")
    attempts = models.PositiveSmallIntegerField(default=0)
    deferrals = models.PositiveIntegerField(
        default=0, help_text="Times put back unsent because its destination had no free connection slot."
    )
    due_at = models.DateTimeField(null=True, blank=True, help_text="When the next attempt is due.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Always its event's received_at (postbacks/services.py): retention and the log's filter
    # find an event's deliveries on the event's day by it.
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        permissions = [("resend_delivery", "Can resend deliveries")]
        indexes = [
            models.Index(
                fields=["due_at"],
                name="delivery_due_idx",
                condition=models.Q(status__in=["scheduled", "sending"]),
            ),
            models.Index(fields=["configuration", "status", "created_at"], name="delivery_config_status_idx"),
            # Retention deletes the oldest first (postbacks/retention.py).
            models.Index(fields=["created_at"], name="delivery_created_idx"),
            # The log filtered by event name, newest first: read in the order it shows.
            models.Index(fields=["event_name", "id"], name="delivery_event_name_idx"),
        ]

    def __str__(self) -> str:
        return str(self.delivery_id)


class SessionPeriodClaim(models.Model):
    """SessionBegin's rule, one postback per device, configuration and 24-hour period: the
    period a scheduled delivery took, unique, so that a concurrent SessionBegin of the same
    period is refused by the database. Kept while an event of its period may still arrive
    (EVENT_MAX_AGE_DAYS + 2 days, postbacks/retention.py), longer than nothing else needs."""

    # Found through the unique index, which leads with the device (a batch asks by its devices).
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+", db_index=False)
    configuration = models.ForeignKey(PostbackConfiguration, on_delete=models.CASCADE, related_name="+")
    period = models.PositiveIntegerField(help_text="24-hour periods since the install or reengagement.")
    claimed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "configuration", "period"], name="session_period_claim_unique")
        ]
        # No index of claimed_at: retention walks the claims in the order of their ids, which
        # is the order they were made, and stops at the first it keeps.

    def __str__(self) -> str:
        return f"period {self.period} of device {self.device_id}"


SLOW_ATTEMPT_MS = 2000  # an attempt that took longer is slow (the delivery log's filter)


class Attempt(models.Model):
    """One HTTP exchange of a delivery: what was sent and what came back."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Failed, will retry"
        FAILED = "failed", "Failed permanently"

    # Found through attempt_unique_number (delivery, number), which leads with it: an index
    # of its own would be a second copy (221 MB at 10.8 million attempts) to write per attempt.
    # No database constraint: attempts go with their delivery's partition, dropped together.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False, db_constraint=False
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    method = models.CharField(max_length=8)
    url = models.TextField()
    # Where it went instead of `url` when POSTBACK_CAPTURE_URL was set ("" when it was not).
    captured_url = models.TextField(blank=True, default="")
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_unique_number")]
        # The delivery log's "slow" filter reads only these few attempts, not all of them.
        indexes = [
            models.Index(
                fields=["delivery"], condition=models.Q(duration_ms__gt=SLOW_ATTEMPT_MS), name="attempt_slow_idx"
            )
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of {self.delivery_id}"


# Upper bounds (ms) of the response-time buckets a DeliveryMinute counts attempts in; the last
# bucket holds everything slower. Percentiles are read from these (postbacks/statistics.py).
RESPONSE_BUCKETS_MS = (50, 100, 200, 300, 500, 750, 1000, 2000, 3000, 5000, 10000)


# Upper bounds (s) of the buckets of delivered deliveries' wait from first due to delivered
# (retries included: the statistics' "due → delivered").
DELAY_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400)


def response_bucket_fields() -> list[str]:
    return [f"under_{bound}ms" for bound in RESPONSE_BUCKETS_MS] + ["slower"]


def delay_bucket_fields() -> list[str]:
    return [f"due_under_{bound}s" for bound in DELAY_BUCKETS_S] + ["due_longer"]


class DeliveryMinute(AccountScoped):
    """Attempts of one configuration that finished in one minute with one outcome and failure
    cause: counts, total response time and a response-time histogram. Kept as attempts are
    recorded (postbacks/rollups.py), so the statistics never scan the deliveries table."""

    account_path = "app__account"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    configuration = models.ForeignKey(PostbackConfiguration, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Attempt.Outcome.choices)
    cause = models.CharField(max_length=16, blank=True, help_text="Why it failed (rollups.CAUSES); empty if not.")
    attempts = models.PositiveIntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["configuration", "minute", "outcome", "cause"], name="delivery_minute_unique"
            )
        ]
        indexes = [models.Index(fields=["minute"], name="delivery_minute_idx")]

    def __str__(self) -> str:
        return f"{self.configuration_id} {self.minute:%Y-%m-%d %H:%M} {self.outcome} {self.cause}"


for _name in response_bucket_fields() + delay_bucket_fields():
    DeliveryMinute.add_to_class(_name, models.PositiveIntegerField(default=0))


class Erasure(AccountScoped):
    """A request to erase a device (GDPR, CCPA): what was asked, when, and what it removed.

    The record outlives what it erased, so it keeps no device id in clear: only a keyed hash
    of each (postbacks/erasure.py device_id_hash). The ids in clear wait in `pending_ids`
    only until a worker processes the request, which empties it.
    """

    account_path = "app__account"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="erasures")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    id_hashes = models.JSONField(
        "device id hashes", default=dict, help_text="Kind → HMAC-SHA256 of the id, keyed from SECRET_KEY."
    )
    pending_ids = models.JSONField(default=dict, blank=True, help_text="Emptied when the erasure is processed.")
    counts = models.JSONField(null=True, blank=True, help_text="Rows erased, by kind.")
    requested_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Queued for a worker until then; queued again after, if still pending."
    )
    cutoff_at = models.DateTimeField(
        null=True, blank=True, help_text="When the worker locked the devices: what was stored before is erased."
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["requested_at"], name="erasure_pending_idx", condition=models.Q(status="pending"))
        ]

    def __str__(self) -> str:
        return f"Erasure {self.pk}"


class AlertRules(AccountScoped):
    """When to alert about a postback configuration's failures, where, and whether to pause it:
    an account's defaults (no configuration) or one configuration's own, which replace them.
    With neither, the ALERT_* settings apply (docs/alerts.md)."""

    account_path = "account"

    account = models.ForeignKey("events.Account", on_delete=models.CASCADE, related_name="alert_rules")
    configuration = models.OneToOneField(
        PostbackConfiguration,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Empty: the account's defaults, for every configuration without rules of its own.",
    )
    consecutive_failures = models.PositiveIntegerField(
        default=10, help_text="Alert when this many attempts in a row fail (0 = off)."
    )
    failure_rate_percent = models.PositiveSmallIntegerField(
        default=50,
        validators=[MaxValueValidator(100)],
        help_text="Alert when at least this share of the attempts in the window failed (0 = off).",
    )
    window_minutes = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1), MaxValueValidator(1440)])
    window_min_attempts = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1)],
        help_text="The failure rate counts only once the window holds this many attempts.",
    )
    pause_on_alert = models.BooleanField(
        default=False,
        help_text="Pause the configuration when it alerts: new deliveries are held (not dropped) until Resume.",
    )
    email_to = models.CharField(max_length=500, blank=True, help_text="Comma-separated addresses.")
    webhook_url = models.CharField(
        max_length=2000,
        blank=True,
        help_text='Receives a JSON message (with a Slack-compatible "text"). Empty: ALERT_WEBHOOK_URL.',
    )

    class Meta:
        verbose_name_plural = "alert rules"
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=models.Q(configuration__isnull=True), name="alert_rules_one_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"Alerts for {self.configuration}" if self.configuration_id else f"Alert defaults of {self.account}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.configuration_id and self.account_id and self.configuration.app.account_id != self.account_id:
            errors["configuration"] = "That configuration belongs to another account."
        if self.webhook_url:
            problem = destination_problem(self.webhook_url)
            if problem or "{" in self.webhook_url:
                errors["webhook_url"] = problem or "The webhook URL is fixed text: no {placeholders}."
        if errors:
            raise ValidationError(errors)


class AlertState(models.Model):
    """What the alert rules know about one configuration: its recent attempts, whether it is
    alerting, and whether it is paused (its due deliveries are then held, not claimed)."""

    configuration = models.OneToOneField(
        PostbackConfiguration, on_delete=models.CASCADE, primary_key=True, related_name="alert_state"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    # [[minute (Unix time // 60), attempts, failed attempts], ...] of the last window.
    window = models.JSONField(default=list, blank=True)
    alerting = models.BooleanField(default=False)
    alerted_at = models.DateTimeField(null=True, blank=True)
    alert_reason = models.CharField(max_length=300, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=["paused"], name="alert_state_paused_idx", condition=models.Q(paused=True))]

    def __str__(self) -> str:
        return f"Alert state of {self.configuration_id}"


class Alert(AccountScoped):
    """One alert raised or cleared: the record, and the outbox its notification task reads."""

    account_path = "configuration__app__account"

    class Kind(models.TextChoices):
        FAILING = "failing", "Failing"
        RECOVERED = "recovered", "Recovered"

    configuration = models.ForeignKey(PostbackConfiguration, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.CharField(max_length=300)
    paused = models.BooleanField(default=False, help_text="This alert paused the configuration.")
    created_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    notification = models.CharField(max_length=500, blank=True, help_text="What each channel answered.")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.configuration}"
