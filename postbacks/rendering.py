"""Turn a postback configuration and an event's macro values into the exact HTTP request."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from partners.macros import ATTRIBUTION_MACRO_NAMES, FIELD_PREFIX, SAMPLE_VALUES, url_authority_problem
from partners.templating import append_query, fill_placeholders, render_request
from postbacks.models import PostbackConfiguration, endpoint_base_problem
from postbacks.signing import signing_problems

logger = logging.getLogger("postbacks.rendering")


class RenderError(Exception):
    """The configuration cannot produce a request (e.g. its partner lost the template)."""


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    problems: tuple[str, ...] = ()  # values a certified template left out (see partners/templating.py)


def values_for(*, configuration: PostbackConfiguration, values: dict[str, str]) -> dict[str, str]:
    """An event's macro values as this configuration sees them: attributed_to_partner says
    whether its partner is the network that won (custom: 0)."""
    partner = configuration.partner
    won = partner is not None and partner.kind == partner.Kind.NETWORK and values.get("network_id") == partner.slug
    return {**values, "attributed_to_partner": "1" if won else "0"}


def shareable_values(*, configuration: PostbackConfiguration, values: dict[str, str]) -> dict[str, str]:
    """The macro values this configuration may send: attribution data is blanked where not
    allowed, and attributed_to_partner says whether the partner is the network that won."""
    partner = configuration.partner
    values = values_for(configuration=configuration, values=values)
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


def requirement_problems(*, configuration: PostbackConfiguration, rendered: RenderedRequest | None) -> list[str]:
    """What the partner requires that this configuration misses, for the preview and the test:
    network-specific fields missing or malformed (a partner can gain a required field, such as
    an access token, after the configuration was saved), then the values the template had to
    leave out of `rendered`. Messages may quote a field's value: mask secrets before showing."""
    problems: list[str] = []
    partner_configuration = configuration.partner_configuration
    if configuration.kind == PostbackConfiguration.Kind.CERTIFIED and partner_configuration is not None:
        values = partner_configuration.field_values if isinstance(partner_configuration.field_values, dict) else {}
        for partner_field in partner_configuration.partner.fields.all():
            value = values.get(partner_field.name, "")
            problem = partner_field.value_problem(value.strip() if isinstance(value, str) else "")
            if problem:
                problems.append(f"{partner_configuration.partner}: {problem}")
    if rendered is not None:
        problems += [f"Left out of the request: {problem}" for problem in rendered.problems]
    return problems


def reply_rules_of(configuration: PostbackConfiguration) -> dict | None:
    """How to read the replies to this configuration's postbacks: its partner template's rules."""
    partner_configuration = configuration.partner_configuration
    if configuration.kind != PostbackConfiguration.Kind.CERTIFIED or partner_configuration is None:
        return None
    template = partner_configuration.partner.template_for_event(configuration.fires_on)
    return template.reply if template is not None else None


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
    url_template, query, body = with_overrides(
        url_template=template.url_template,
        encoding=template.encoding,
        query=template.query,
        body=template.body,
        endpoint_base=partner_configuration.endpoint_base,
        fixed_parameters=partner_configuration.fixed_parameters or {},
    )
    if url_template != template.url_template:
        # The rule the base was saved under, again: a base saved before it must not send.
        problem = endpoint_base_problem(partner_configuration.endpoint_base, resolve=False)
        if problem:
            raise RenderError(f"The partner configuration's endpoint base: {problem}")
    request = render_request(
        method=template.method,
        url_template=url_template,
        encoding=template.encoding,
        query=query,
        body=body,
        headers=template.headers,
        context=context,
    )
    for problem in request.problems:
        # A value the template could not convert is left out of the request: said here, and
        # in the preview, rather than sent wrong.
        logger.warning("%s's %s template: %s", partner, template.event, problem)
    return RenderedRequest(
        method=request.method, url=request.url, headers=request.headers, body=request.body, problems=request.problems
    )


def with_overrides(
    *, url_template: str, encoding: str, query: dict, body, endpoint_base: str, fixed_parameters: dict[str, str]
) -> tuple[str, dict, object]:
    """A template's URL, query and body with a partner configuration's overrides applied: the
    endpoint base replaces the URL's scheme and host and goes before its path; each fixed
    parameter replaces the template's parameter of that name, or is added where the encoding
    puts parameters (the query, the form body, or the JSON body's top-level object)."""
    if endpoint_base:
        parts = urlsplit(url_template)
        base = urlsplit(endpoint_base)
        url_template = urlunsplit(
            (base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, parts.fragment)
        )
    if not fixed_parameters:
        return url_template, query, body
    query = dict(query or {})
    # A JSON body takes them when it is a plain object (not a value spec such as {"$json": …}).
    plain_object = isinstance(body, dict) and not any(key.startswith("$") for key in body)
    body_takes_parameters = encoding in ("query", "form") or plain_object
    body = dict(body) if isinstance(body, dict) else body
    for name, value in fixed_parameters.items():
        constant = {"$const": value}  # sent as given: no placeholders are filled in a fixed value
        if name in query or not body_takes_parameters:
            query[name] = constant
        else:
            body[name] = constant
    return url_template, query, body


def destination_host(configuration: PostbackConfiguration) -> str:
    """The host a configuration's postbacks go to, lower-case ("" when it has none). Fixed per
    configuration: a placeholder never stands in a host (url_authority_problem)."""
    if configuration.kind == PostbackConfiguration.Kind.CUSTOM:
        url = configuration.destination_url
    else:
        partner_configuration = configuration.partner_configuration
        template = (
            partner_configuration.partner.template_for_event(configuration.fires_on) if partner_configuration else None
        )
        if template is None:
            return ""
        url = partner_configuration.endpoint_base or template.url_template
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


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
