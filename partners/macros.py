"""The canonical macro set: the one vocabulary of values a postback can carry.

Custom postbacks pick macros from it; certified partner templates map it to each partner's
own parameter names. docs/macros.md documents this table (a test keeps the two equal).
Placeholder syntax: `{name}` is a macro, `{fields.name}` a partner's network-specific field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Macro:
    name: str
    description: str
    example: str
    # Attribution macros are filled only where the postback may see attribution data
    # (certified "All" for installs of other networks, custom without supply-network-data).
    attribution: bool = False


# The macros in the groups the admin shows them in (docs/macros.md lists them in this order).
MACRO_GROUPS: tuple[tuple[str, tuple[Macro, ...]], ...] = (
    (
        "Device identifiers",
        (
            Macro("adid", "Google advertising ID (GAID) of an Android device", "38400000-8cf0-11bd-b23e-10b96e40000d"),
            Macro("idfa", "Apple identifier for advertisers", "6D92078A-8246-4BA4-AE5B-76104861E7DC"),
            Macro("idfv", "Apple identifier for vendors", "599F9C00-92DC-4B5C-9464-7971F01F8370"),
            Macro("android_id", "Android ID", "9774d56d682e549c"),
            Macro("device_id", "Device ID set by the app", "device-4f2a"),
            Macro(
                "limit_ad_tracking",
                "1 when the user limits ad tracking (the event's limit_ad_tracking, else the device's latest; "
                "if never reported, 1 when the event carries no advertising ID), else 0",
                "0",
            ),
        ),
    ),
    (
        "Tracking and consent",
        # Tracking and consent: the event's, else the device's latest; empty when never reported
        (
            Macro(
                "att_status",
                "iOS App Tracking Transparency: authorized, denied, restricted or not_determined",
                "authorized",
            ),
            Macro("consent_ad_user_data", "EEA consent to ad user data: 1, 0, or empty when not reported", "1"),
            Macro(
                "consent_ad_personalization", "EEA consent to ad personalization: 1, 0, or empty when not reported", "1"
            ),
        ),
    ),
    (
        "Event",
        (
            Macro("event_id", "Client-generated event ID (the idempotency key)", "evt-20261123-0001"),
            Macro("event_name", "Event name (a certified partner receives its own name for it)", "purchase"),
            Macro("event_value", "Free-text event value", "sku-42"),
            Macro("revenue", "Revenue as a decimal number", "4.99"),
            Macro("currency", "ISO 4217 currency code", "USD"),
            Macro("event_time", "Event time, ISO 8601 UTC", "2026-11-23T12:00:00Z"),
            Macro("event_timestamp", "Event time, Unix seconds", "1795435200"),
            Macro("install_time", "Install time, ISO 8601 UTC", "2026-11-22T08:30:00Z"),
            Macro("install_timestamp", "Install time, Unix seconds", "1795336200"),
            Macro("ip", "Device IP address", "203.0.113.7"),
            Macro("user_agent", "Device user agent", "Dalvik/2.1.0 (Linux; U; Android 14)"),
            Macro("country", "ISO 3166 alpha-2 country code", "US"),
            Macro("os_version", "Operating system version", "14"),
            Macro("app_version", "App version", "3.2.1"),
            Macro("device_model", "Device model as the OS reports it (empty when not reported)", "iPhone15,2"),
            Macro("language", "Device language, a BCP 47 tag (empty when not reported)", "en-US"),
        ),
    ),
    (
        "App",
        (
            Macro("app_id", "Package name (Android) or bundle ID (iOS)", "com.example.game"),
            Macro("app_name", "App name", "Example Game"),
            Macro("platform", "android or ios", "android"),
        ),
    ),
    (
        "Attribution",
        (
            Macro("attributed", "1 when attributed to a network, else 0", "1", attribution=True),
            Macro("attribution_type", "install or reengagement", "install", attribution=True),
            Macro("is_reengagement", "1 when the latest conversion is a reengagement, else 0", "0", attribution=True),
            Macro("network_id", "Slug of the attributed network", "meta", attribution=True),
            Macro("network_name", "Name of the attributed network", "Meta (Facebook)", attribution=True),
            Macro("agency_id", "Slug of the agency, if the tracker has one", "moburst", attribution=True),
            Macro("agency_name", "Name of the agency, if the tracker has one", "Moburst", attribution=True),
            Macro("tracker_id", "ID of the attributed tracker", "trk_8c1f0a2b3d", attribution=True),
            Macro("campaign_id", "Campaign ID of the attributed tracker", "cmp-1001", attribution=True),
            Macro("campaign_name", "Campaign name of the attributed tracker", "Autumn launch", attribution=True),
            Macro("site_id", "Site (sub-publisher) ID of the attributed tracker", "site-77", attribution=True),
            Macro("creative_id", "Creative ID of the attributed tracker", "cr-5", attribution=True),
            Macro("click_id", "Click ID of the attributed click", "clk-9f8e7d", attribution=True),
            # Sent to every partner, so that one receiving "All" knows which conversions it did not drive
            Macro(
                "attributed_to_partner",
                "1 when the install or reengagement is attributed to this postback's network, else 0 (custom: 0)",
                "1",
            ),
        ),
    ),
)
MACROS: tuple[Macro, ...] = tuple(macro for _, macros in MACRO_GROUPS for macro in macros)

MACRO_NAMES: frozenset[str] = frozenset(macro.name for macro in MACROS)
ATTRIBUTION_MACRO_NAMES: frozenset[str] = frozenset(macro.name for macro in MACROS if macro.attribution)
SAMPLE_VALUES: dict[str, str] = {macro.name: macro.example for macro in MACROS}

ANY_POST_INSTALL_EVENT = "*"
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")
FIELD_PREFIX = "fields."


# RFC 3986's own split of a URL: the scheme, then "//" and the authority (user, host, port).
_SCHEME_AND_AUTHORITY = re.compile(r"^(?:[^:/?#]*:)?(?://[^/?#]*)?")


def placeholders_in(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def url_authority_problem(url_template: str) -> str | None:
    """Why a URL template lets a placeholder choose where the request goes, or None.

    Placeholders may stand in the path and the query (their values are URL-encoded there, so
    they cannot leave them), never in the scheme, host or port: whoever sends events (the app
    key ships inside the app) would choose the destination. Checked without resolving anything.
    """
    head = _SCHEME_AND_AUTHORITY.match(url_template).group(0)
    names = placeholders_in(head)
    if not names:
        return None
    listed = ", ".join(f"{{{name}}}" for name in names)
    return (
        f"{listed} stands in the scheme, host or port: a placeholder may fill the path and query only, "
        "never choose where the request goes."
    )


def template_problems(text: str, *, field_names: Iterable[str] = ()) -> list[str]:
    """Placeholders in `text` that nothing would fill, as messages that say what to fix."""
    fields = set(field_names)
    problems = []
    for name in placeholders_in(text):
        if name.startswith(FIELD_PREFIX):
            if name.removeprefix(FIELD_PREFIX) not in fields:
                known = ", ".join(sorted(fields)) or "none"
                problems.append(f"{{{name}}} names no network-specific field of this partner (known: {known}).")
        elif name not in MACRO_NAMES:
            problems.append(f"{{{name}}} is not a known macro (see docs/macros.md).")
    return problems
