"""Validation of incoming events (event_validate) and the API's schema.

Every refusal names its field and says what to fix."""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from events.codes import COUNTRIES, CURRENCIES
from events.models import ATT_STATUSES, DEVICE_ID_KINDS
from events.services import EventInput
from project import clock

UUID_KINDS = ("adid", "idfa", "idfv")
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
EVENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
MAX_PROPERTIES_BYTES = 4096
MAX_FUTURE = timedelta(minutes=5)
# Already in the form normalize_device_ids gives (str(uuid.UUID(...))), once lower-cased.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ANDROID_ID = re.compile(r"[0-9a-fA-F]{8,32}")
# A BCP 47 tag's shape: a language subtag of letters, then subtags of letters and digits.
LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
LANGUAGE_TAG_LENGTH = (2, 35)


def language_tag(value: str) -> str | None:
    """A BCP 47 language tag in the case RFC 5646 (2.1.1) recommends, or None if it is not one:
    the language lower-case, a script title-case (Latn), a region upper-case (BR); after a
    singleton (an extension or x- private use) all lower-case. "pt-br" -> "pt-BR"."""
    low, high = LANGUAGE_TAG_LENGTH
    if not (low <= len(value) <= high and LANGUAGE_TAG.fullmatch(value)):
        return None
    first, *rest = value.split("-")
    subtags, extended = [first.lower()], len(first) == 1
    for subtag in rest:
        extended = extended or len(subtag) == 1
        if not extended and len(subtag) == 2 and subtag.isalpha():
            subtags.append(subtag.upper())
        elif not extended and len(subtag) == 4 and subtag.isalpha():
            subtags.append(subtag.title())
        else:
            subtags.append(subtag.lower())
    return "-".join(subtags)


def normalize_device_ids(raw: dict, *, strict: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(usable ids, errors). Advertising ids are compared lower-case; an all-zero id means
    "limited ad tracking" and is dropped rather than matched across every such device."""
    ids, errors = {}, {}
    for kind in DEVICE_ID_KINDS:
        value = raw.get(kind)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 128:
            errors[kind] = "Must be text of at most 128 characters."
            continue
        value = value.strip()
        if kind in UUID_KINDS:
            lowered = value.lower()
            if CANONICAL_UUID.fullmatch(lowered):
                value = lowered
            else:
                try:
                    value = str(uuid.UUID(value))
                except ValueError:
                    errors[kind] = "Must be a UUID, e.g. 38400000-8cf0-11bd-b23e-10b96e40000d."
                    continue
            if value == ZERO_UUID:
                continue
        elif kind == "android_id" and not ANDROID_ID.fullmatch(value):
            errors[kind] = "Must be 8 to 32 hexadecimal characters."
            continue
        if value:
            ids[kind] = value
    if strict:
        unknown = sorted(set(raw) - set(DEVICE_ID_KINDS))
        for name in unknown:
            errors[name] = f"Unknown device identifier; use {', '.join(DEVICE_ID_KINDS)}."
    return ids, errors


# Deeper than any event needs, and far from the depth where copying or dumping a value
# exhausts Python's recursion (about 1,000 levels).
MAX_JSON_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
NUL_MESSAGE = "Must not contain NUL characters (\\u0000)."
SURROGATE_MESSAGE = (
    "Must not contain unpaired UTF-16 surrogates (\\ud800 to \\udfff): send text as UTF-8 or as surrogate pairs."
)
DEPTH_MESSAGE = f"Nested more than {MAX_JSON_DEPTH} levels."


def json_problem(value, *, levels: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON value cannot be stored, or None: the one rule for every field's
    value, its keys and strings included. JSON can carry a NUL (\\u0000) and a lone UTF-16
    surrogate (\\udc00), which PostgreSQL cannot store (and SQLite's driver cannot encode);
    and no event needs containers nested more than `levels` deep. Never recurses."""
    if not isinstance(value, dict | list):
        return _text_problem(value) if isinstance(value, str) else None
    containers = [(value, 1)]
    while containers:
        container, depth = containers.pop()
        if depth > levels:
            return DEPTH_MESSAGE
        for item in (*container, *container.values()) if isinstance(container, dict) else container:
            kind = type(item)
            if kind is str:
                if (not item.isascii() or "\x00" in item) and (problem := _text_problem(item)):
                    return problem
            elif kind is dict or kind is list:
                containers.append((item, depth + 1))
    return None


def _text_problem(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def readable_name(name: str) -> str:
    """A field name as an error reply can carry it: a lone surrogate cannot be encoded."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


@extend_schema_field(
    {
        "type": "object",
        # null and "" are taken as absent
        "properties": {kind: {"type": "string", "maxLength": 128, "nullable": True} for kind in DEVICE_ID_KINDS},
        "additionalProperties": False,
        "minProperties": 1,
    }
)
class DeviceField(serializers.Field):
    default_error_messages = {"invalid": "Must be an object of device identifiers."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        ids, errors = normalize_device_ids(data, strict=True)
        if errors:
            raise serializers.ValidationError(errors)
        if not ids:
            raise serializers.ValidationError(
                f"Give at least one device identifier ({', '.join(DEVICE_ID_KINDS)}); an all-zero ID does not count."
            )
        return ids

    def to_representation(self, value):
        return value


CONSENT_KINDS = ("ad_user_data", "ad_personalization")


@extend_schema_field(
    {
        "type": "object",
        "properties": {kind: {"type": "boolean"} for kind in CONSENT_KINDS},
        "additionalProperties": False,
    }
)
class ConsentField(serializers.Field):
    """EEA consent (Google's consent mode): each of ad_user_data and ad_personalization, true or false."""

    default_error_messages = {"invalid": f"Must be an object of true/false values: {', '.join(CONSENT_KINDS)}."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        errors = {}
        for name, value in data.items():
            if name not in CONSENT_KINDS:
                errors[readable_name(str(name))] = f"Unknown consent; use {', '.join(CONSENT_KINDS)}."
            elif not isinstance(value, bool):
                errors[name] = "Must be true or false."
        if errors:
            raise serializers.ValidationError(errors)
        return data

    def to_representation(self, value):
        return value


class StrictBooleanField(serializers.BooleanField):
    """true or false only: not "yes", 1 or "true", which a client might mean otherwise."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of quietly converting them."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EventSerializer(serializers.Serializer):
    """One event's schema (OpenAPI), and the fields event_validate reads values with; the
    rules are event_validate's alone."""

    event_id = StrictCharField(
        max_length=128, help_text="Client-generated idempotency key, unique per app (printable ASCII)."
    )
    event = StrictCharField(max_length=64, help_text="install, session_begin, or a declared custom event.")
    device = DeviceField(help_text="At least one of adid, idfa, idfv, android_id, device_id.")
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601; default now.")
    ip = serializers.IPAddressField(required=False, help_text="Default: the caller's address.")
    user_agent = StrictCharField(required=False, allow_blank=True, max_length=512)
    os_version = StrictCharField(required=False, allow_blank=True, max_length=32)
    app_version = StrictCharField(required=False, allow_blank=True, max_length=32)
    country = StrictCharField(required=False, allow_blank=True, max_length=2, help_text="ISO 3166 alpha-2.")
    revenue = serializers.DecimalField(max_digits=18, decimal_places=6, required=False, allow_null=True)
    currency = StrictCharField(required=False, allow_blank=True, max_length=3, help_text="ISO 4217.")
    value = StrictCharField(required=False, allow_blank=True, max_length=1024)
    properties = serializers.JSONField(required=False, help_text=f"An object of at most {MAX_PROPERTIES_BYTES} bytes.")
    att_status = serializers.ChoiceField(
        choices=ATT_STATUSES,
        required=False,
        help_text="iOS App Tracking Transparency status. The IDFA is sent to no partner unless it is authorized.",
    )
    limit_ad_tracking = StrictBooleanField(
        required=False, help_text="true: the user limits ad tracking, and no advertising ID is sent to any partner."
    )
    consent = ConsentField(required=False, help_text="EEA users' consent: ad_user_data, ad_personalization.")
    device_model = StrictCharField(
        required=False, allow_blank=True, max_length=64, help_text='As the OS reports it, e.g. "Pixel 8", "iPhone15,2".'
    )
    language = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=LANGUAGE_TAG_LENGTH[1],
        help_text='The device\'s language, a BCP 47 tag, e.g. "en", "en-US", "pt-BR" (case is normalised).',
    )


# A revenue the schema's DecimalField keeps as it is, but for its six decimal places.
_PLAIN_REVENUE = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,6})?")
_SIX_PLACES = Decimal("0.000001")
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")  # as ipaddress reads one: no leading zeros
_NOT_PLAIN = object()  # a shortcut's answer: read this value through the schema's field


@functools.cache
def _declared_field(name: str) -> serializers.Field:
    """The schema's field (EventSerializer's), built once per process: how DRF reads and words one value."""
    return EventSerializer().fields[name]


def _plain(value, max_length: int) -> bool:
    """Text DRF's CharField would keep exactly as it is (json_problem has refused NUL and surrogates)."""
    return isinstance(value, str) and len(value) <= max_length and value == value.strip()


def _text(max_length: int, *, allow_blank: bool = True):
    return lambda value: value if _plain(value, max_length) and (value or allow_blank) else _NOT_PLAIN


def _ids(value):
    ids, errors = normalize_device_ids(value, strict=True) if isinstance(value, dict) else ({}, True)
    return ids if ids and not errors else _NOT_PLAIN


def _consent(value):
    plain = isinstance(value, dict) and set(value) <= _CONSENT_NAMES and all(type(v) is bool for v in value.values())
    return value if plain else _NOT_PLAIN


def _revenue(value):
    if isinstance(value, str) and _PLAIN_REVENUE.fullmatch(value):
        return Decimal(value).quantize(_SIX_PLACES)
    return _NOT_PLAIN


def _json(value):
    """JSONField keeps any value its strict json.dumps can write (no NaN or infinity) as it
    is; whether it can, the rule finds out as it measures the value (one json.dumps, not two)."""
    return _NOT_PLAIN if value is None else value


def _no_rule(value, names):
    return value


def _event_id_rule(value: str, names) -> str:
    if not EVENT_ID.match(value):
        raise serializers.ValidationError("Use printable ASCII characters without spaces.")
    return value


def _event_rule(value: str, names) -> str:
    if value not in names:
        raise serializers.ValidationError(
            f"Unknown event {value!r}: declare it as a custom event of the app first (known: {', '.join(names)})."
        )
    return value


def _code_rule(codes: frozenset, message: str):
    def rule(value: str, names) -> str:
        if value and value.upper() not in codes:
            raise serializers.ValidationError(message)
        return value.upper()

    return rule


def _properties_rule(value, names):
    try:
        written = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):  # as the schema's JSONField words it
        raise serializers.ValidationError(_declared_field("properties").error_messages["invalid"]) from None
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be an object.")
    if len(written.encode()) > MAX_PROPERTIES_BYTES:
        raise serializers.ValidationError(f"At most {MAX_PROPERTIES_BYTES} bytes of JSON.")
    return value


def _language_rule(value: str, names) -> str:
    if not value:
        return value
    tag = language_tag(value)
    if tag is None:
        raise serializers.ValidationError(
            "Not a BCP 47 language tag: letters, digits and hyphens, 2 to 35 characters, e.g. en or pt-BR."
        )
    return tag


# Every field of an event, in the schema's order: (shortcut, rule). The shortcut reads a value
# as the schema's field would when it is plain, else answers _NOT_PLAIN and the field reads it
# (and words its errors); then the rule checks what was read.
_FIELDS = {
    "event_id": (_text(128, allow_blank=False), _event_id_rule),
    "event": (_text(64, allow_blank=False), _event_rule),
    "device": (_ids, _no_rule),
    "timestamp": (lambda value: _NOT_PLAIN, _no_rule),
    "ip": (lambda value: value if isinstance(value, str) and _IPV4.fullmatch(value) else _NOT_PLAIN, _no_rule),
    "user_agent": (_text(512), _no_rule),
    "os_version": (_text(32), _no_rule),
    "app_version": (_text(32), _no_rule),
    "country": (_text(2), _code_rule(COUNTRIES, "Not an ISO 3166 alpha-2 country code, e.g. US.")),
    "revenue": (_revenue, _no_rule),
    "currency": (_text(3), _code_rule(CURRENCIES, "Not an ISO 4217 currency code, e.g. USD.")),
    "value": (_text(1024), _no_rule),
    "properties": (_json, _properties_rule),
    "att_status": (lambda value: value if isinstance(value, str) and value in ATT_STATUSES else _NOT_PLAIN, _no_rule),
    "limit_ad_tracking": (lambda value: value if isinstance(value, bool) else _NOT_PLAIN, _no_rule),
    "consent": (_consent, _no_rule),
    "device_model": (_text(64), _no_rule),
    "language": (_text(LANGUAGE_TAG_LENGTH[1]), _language_rule),
}
EVENT_FIELDS = tuple(_FIELDS)
_REQUIRED = ("event_id", "event", "device")
_CONSENT_NAMES = frozenset(CONSENT_KINDS)


def _read(name: str, value, event_names, data: dict, errors: dict, *, shortcut: bool) -> None:
    """Read one value (by its shortcut, else through the schema's field), then check it by its rule."""
    read_plain, rule = _FIELDS[name]
    try:
        read = read_plain(value) if shortcut else _NOT_PLAIN
        if read is _NOT_PLAIN:
            read = _declared_field(name).run_validation(value)
        data[name] = rule(read, event_names)
    except serializers.SkipField:
        pass
    except serializers.ValidationError as error:
        errors[name] = error.detail


def event_validate(item, *, event_names, shortcuts: bool = True) -> tuple[dict | None, dict | None]:
    """The one validation of an event: (its clean data, None), or (None, its errors by field
    name, worded as DRF words them). Unknown fields and values no field could store
    (json_problem) are refused first; then each value is read (_read) and checked by its
    field's rule; then the fields together.
    shortcuts=False reads every value through the schema's fields: the shortcuts must agree
    with them (tests/events/test_validation_fast.py)."""
    if not isinstance(item, dict):
        message = (
            "This field may not be null."
            if item is None
            else f"Invalid data. Expected a dictionary, but got {type(item).__name__}."
        )
        return None, {api_settings.NON_FIELD_ERRORS_KEY: [message]}
    # Usually nothing in the event is unstorable: one look at the whole, then none at each value.
    storable = json_problem(item, levels=MAX_JSON_DEPTH + 1) is None
    data, errors = {}, {}
    for name, value in item.items():
        if not isinstance(name, str) or name not in _FIELDS:
            errors[readable_name(str(name))] = ["Unknown field."]
        elif not storable and (problem := json_problem(value)):
            errors[name] = [problem]
        else:
            _read(name, value, event_names, data, errors, shortcut=shortcuts)
    for name in _REQUIRED:
        if name not in item:
            _read(name, empty, event_names, data, errors, shortcut=False)
    if errors:
        return None, errors
    now = clock.now()
    timestamp = data.get("timestamp") or now
    if timestamp > now + MAX_FUTURE:
        return None, {"timestamp": ["More than 5 minutes in the future: check the clock."]}
    if timestamp < now - timedelta(days=settings.EVENT_MAX_AGE_DAYS):
        return None, {"timestamp": [f"Older than {settings.EVENT_MAX_AGE_DAYS} days (EVENT_MAX_AGE_DAYS)."]}
    data["timestamp"] = timestamp
    if data.get("revenue") is not None and not data.get("currency"):
        return None, {"currency": ["Required with revenue."]}
    return data, None


def event_input_from(data: dict, *, caller_ip: str | None) -> EventInput:
    """An EventInput from event_validate's clean data."""
    return EventInput(
        event_id=data["event_id"],
        name=data["event"],
        device_ids=data["device"],
        occurred_at=data["timestamp"],
        ip=data.get("ip") or caller_ip,
        user_agent=data.get("user_agent", ""),
        os_version=data.get("os_version", ""),
        app_version=data.get("app_version", ""),
        country=data.get("country", ""),
        revenue=data.get("revenue"),
        currency=data.get("currency", ""),
        value=data.get("value", ""),
        properties=data.get("properties") or {},
        att_status=data.get("att_status", ""),
        limit_ad_tracking=data.get("limit_ad_tracking"),
        consent_ad_user_data=data.get("consent", {}).get("ad_user_data"),
        consent_ad_personalization=data.get("consent", {}).get("ad_personalization"),
        device_model=data.get("device_model", ""),
        language=data.get("language", ""),
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in words.")


class EventAcceptedSerializer(serializers.Serializer):
    event_id = serializers.CharField()
    id = serializers.IntegerField(help_text="The server's id of the stored event.")
    postbacks_scheduled = serializers.IntegerField()


MAX_BATCH = 1000


class BatchSerializer(serializers.Serializer):
    events = serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=MAX_BATCH, allow_empty=False)


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    event_id = serializers.CharField(required=False)
    id = serializers.IntegerField(required=False)
    postbacks_scheduled = serializers.IntegerField(required=False)
    errors = serializers.DictField(
        required=False, help_text="A rejected item's errors: an object of field names, each with its errors."
    )


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)
