"""Turn a postback configuration and an event's macro values into the exact HTTP request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from partners.macros import ATTRIBUTION_MACRO_NAMES, FIELD_PREFIX, PLACEHOLDER, SAMPLE_VALUES, url_authority_problem
from postbacks.models import PostbackConfiguration
from postbacks.signing import signing_problems


class RenderError(Exception):
    """The configuration cannot produce a request (e.g. its partner lost the template)."""


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


def fill_placeholders(text: str, values: dict[str, str], *, url_encode: bool) -> str:
    """Replace {name} placeholders; in URLs every value is encoded so it cannot add parameters."""

    def replace(match) -> str:
        value = str(values.get(match.group(1), "") or "")
        return quote(value, safe="") if url_encode else value

    return PLACEHOLDER.sub(replace, text)


def append_query(url: str, params: list[tuple[str, str]]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    # The fragment is never sent over HTTP, so it is dropped rather than left after the query.
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def shareable_values(*, configuration: PostbackConfiguration, values: dict[str, str]) -> dict[str, str]:
    """The macro values this configuration may send: attribution data is blanked where not
    allowed, and attributed_to_partner says whether the partner is the network that won."""
    partner = configuration.partner
    won = partner is not None and partner.kind == partner.Kind.NETWORK and values.get("network_id") == partner.slug
    values = {**values, "attributed_to_partner": "1" if won else "0"}
    if partner is None or partner.kind == partner.Kind.ANALYTICS:
        # Custom postbacks and analytics partners get attribution data only when asked to.
        allowed = configuration.supply_network_data
    else:
        # A network or agency sees attribution data only for what it drove itself.
        allowed = partner.slug in (values.get("network_id"), values.get("agency_id"))
    if allowed:
        return dict(values)
    return {name: ("" if name in ATTRIBUTION_MACRO_NAMES else value) for name, value in values.items()}


def render_postback(*, configuration: PostbackConfiguration, values: dict[str, str]) -> RenderedRequest:
    if configuration.signing_secret:
        # The rule the configuration was saved under, again: one saved before it must not send.
        problems = signing_problems(
            kind=configuration.kind, method=configuration.method, destination_url=configuration.destination_url
        )
        if problems:
            raise RenderError(next(iter(problems.values())))
    values = shareable_values(configuration=configuration, values=values)
    if configuration.kind == PostbackConfiguration.Kind.CUSTOM:
        return _render_custom(configuration, values)
    return _render_certified(configuration, values)


def _render_custom(configuration: PostbackConfiguration, values: dict[str, str]) -> RenderedRequest:
    # The rule the configuration was saved under, again: one saved before it must not send.
    problem = url_authority_problem(configuration.destination_url)
    if problem:
        raise RenderError(problem)
    selected = [(name, str(values.get(name, "") or "")) for name in configuration.macros]
    url = fill_placeholders(configuration.destination_url, values, url_encode=True)
    if configuration.method == PostbackConfiguration.Method.POST:
        return RenderedRequest(
            method="POST",
            # A signed request carries its values in the (signed) body only.
            url=url if configuration.signing_secret else append_query(url, selected),
            headers={"Content-Type": "application/json"},
            body=json.dumps(dict(selected), separators=(",", ":")),
        )
    return RenderedRequest(method="GET", url=append_query(url, selected))


def _render_certified(configuration: PostbackConfiguration, values: dict[str, str]) -> RenderedRequest:
    partner_configuration = configuration.partner_configuration
    if partner_configuration is None:
        raise RenderError("The certified postback has no partner configuration.")
    partner = partner_configuration.partner
    template = partner.template_for_event(configuration.fires_on)
    if template is None:
        raise RenderError(f"{partner} has no template for {configuration.fires_on} any more.")
    authority_problem = url_authority_problem(template.url_template)
    if authority_problem:
        raise RenderError(f"{partner}'s template: {authority_problem}")
    context = dict(values)
    our_event_name = values.get("event_name") or configuration.fires_on
    context["event_name"] = (
        configuration.partner_event_name or template.event_name_map.get(our_event_name) or our_event_name
    )
    for name, value in (partner_configuration.field_values or {}).items():
        context[FIELD_PREFIX + name] = value
    url = fill_placeholders(template.url_template, context, url_encode=True)
    params = [
        (name, fill_placeholders(value, context, url_encode=False)) for name, value in template.parameters.items()
    ]
    if template.body_format == template.BodyFormat.JSON:
        return RenderedRequest(
            method=template.method,
            url=url,
            headers={"Content-Type": "application/json"},
            body=json.dumps(dict(params), separators=(",", ":")),
        )
    return RenderedRequest(method=template.method, url=append_query(url, params))


def sample_values(*, configuration: PostbackConfiguration) -> dict[str, str]:
    """Macro values of a made-up event, as the preview shows them (attributed to the partner)."""
    values = dict(SAMPLE_VALUES)
    app = configuration.app
    values.update(event_name=configuration.fires_on, app_id=app.package_name, app_name=app.name, platform=app.platform)
    partner = configuration.partner
    if partner is not None:
        key = "agency" if partner.kind == partner.Kind.AGENCY else "network"
        values.update({f"{key}_id": partner.slug, f"{key}_name": partner.name})
    return values
