"""The partner template language: declarative value specs, their validation and rendering.

A template is JSON data, never code. A *value spec* is one of:
- a JSON string: a template string, `{macro}` and `{fields.name}` placeholders filled in;
- a JSON number, boolean or null: that constant;
- an array: an array of specs;
- an object: a nested object of specs, unless one of its keys starts with `$`, which makes it
  a *spec object*: exactly one source (`$macro`, `$first`, `$const`, `$template`, `$json`)
  and options (`type`, `transforms`, `map`, `unlisted`, `default`, `empty`).
A value with nothing in it is omitted (the key disappears, and an object or array left empty
too) unless its spec says `"empty": "send"`. A value that cannot be converted (e.g. "abc" as
an integer) is omitted and reported as a problem: rendering never raises on an event's values.
docs/partner-templates.md describes the language with examples.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from partners.macros import PLACEHOLDER, template_problems, url_authority_problem

SOURCES = ("$macro", "$first", "$const", "$template", "$json")
OPTIONS = ("type", "transforms", "map", "unlisted", "default", "empty")
TYPES = ("string", "integer", "number", "boolean")
TRANSFORMS = ("unix_seconds", "unix_ms", "iso8601", "lower", "upper", "trim", "sha256", "md5", "primary_language")
ENCODINGS = ("query", "form", "json")
EMPTY_CHOICES = ("omit", "send")
UNLISTED_CHOICES = ("omit", "keep")  # what a map does with a value it does not list
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# What a header value may hold: printable ASCII and tab. A CR or LF would start a new header
# (or the body); non-ASCII cannot be encoded reliably (http.client sends latin-1).
HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
REPLY_OUTCOMES = ("failed", "retry", "not_chargeable")
REPLY_OPERATORS = ("equals", "not_equals", "empty", "exists")
STATUS_CLASS = re.compile(r"^[45]xx$")


class _Absent:
    """No value: the key is omitted."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


# --- validation ---------------------------------------------------------------------------


def _name_problem(name: Any, field_names: set[str]) -> str | None:
    if not isinstance(name, str):
        return f"give a macro name as text, not {json.dumps(name)}"
    return next(iter(template_problems(f"{{{name}}}", field_names=field_names)), None) or (
        None if PLACEHOLDER.fullmatch(f"{{{name}}}") else f'"{name}" is not a macro or fields.<name>'
    )


def spec_problems(spec: Any, *, path: str, field_names: Iterable[str] = ()) -> list[str]:
    """Every problem of a value spec, each prefixed with its path, e.g. `body.data[0].gaid.type`."""
    fields = set(field_names)
    problems: list[str] = []
    _check(spec, path, fields, problems)
    return problems


def _check(spec: Any, path: str, fields: set[str], problems: list[str]) -> None:
    if isinstance(spec, str):
        problems.extend(f"{path}: {problem}" for problem in template_problems(spec, field_names=fields))
    elif isinstance(spec, float) and not math.isfinite(spec):
        problems.append(f"{path}: {spec} is not a number JSON can carry")
    elif spec is None or isinstance(spec, (bool, int, float)):
        return
    elif isinstance(spec, list):
        for index, item in enumerate(spec):
            _check(item, f"{path}[{index}]", fields, problems)
    elif isinstance(spec, dict):
        if any(isinstance(key, str) and key.startswith("$") for key in spec):
            _check_spec_object(spec, path, fields, problems)
        else:
            for key, value in spec.items():
                _check(value, f"{path}.{key}" if path else key, fields, problems)
    else:  # pragma: no cover - JSON has no other types
        problems.append(f"{path}: not a JSON value")


def _check_spec_object(spec: dict, path: str, fields: set[str], problems: list[str]) -> None:
    sources = [key for key in spec if key in SOURCES]
    unknown = [key for key in spec if key not in SOURCES and key not in OPTIONS]
    for key in unknown:
        problems.append(f'{path}: unknown key "{key}" (sources: {", ".join(SOURCES)}; options: {", ".join(OPTIONS)})')
    if len(sources) != 1:
        problems.append(f"{path}: give exactly one of {', '.join(SOURCES)} (found {len(sources)})")
    for source in sources:
        value = spec[source]
        where = f"{path}.{source}"
        if source == "$macro":
            problem = _name_problem(value, fields)
            if problem:
                problems.append(f"{where}: {problem}")
        elif source == "$first":
            if not isinstance(value, list) or not value:
                problems.append(f"{where}: give a list of macro names (or specs)")
                continue
            for index, item in enumerate(value):
                if isinstance(item, str):
                    problem = _name_problem(item, fields)
                    if problem:
                        problems.append(f"{where}[{index}]: {problem}")
                else:
                    _check(item, f"{where}[{index}]", fields, problems)
        elif source == "$template":
            if not isinstance(value, str):
                problems.append(f"{where}: give a template string")
            else:
                _check(value, where, fields, problems)
        elif source == "$json":
            _check(value, where, fields, problems)
    kind = spec.get("type")
    if kind is not None and kind not in TYPES:
        problems.append(f'{path}.type: unknown type "{kind}" (known: {", ".join(TYPES)})')
    transforms = spec.get("transforms", [])
    if not isinstance(transforms, list):
        problems.append(f"{path}.transforms: give a list")
    else:
        for index, name in enumerate(transforms):
            if name not in TRANSFORMS:
                problems.append(
                    f'{path}.transforms[{index}]: unknown transform "{name}" (known: {", ".join(TRANSFORMS)})'
                )
    if "map" in spec and not isinstance(spec["map"], dict):
        problems.append(f"{path}.map: give an object of our value → the partner's")
    if "unlisted" in spec and ("map" not in spec or spec["unlisted"] not in UNLISTED_CHOICES):
        problems.append(f'{path}.unlisted: give "omit" or "keep", beside a map')
    if spec.get("empty", "omit") not in EMPTY_CHOICES:
        problems.append(f'{path}.empty: give "omit" or "send"')


def template_spec_problems(
    *,
    url_template: str,
    encoding: str,
    query: Any,
    body: Any,
    headers: Any,
    reply: Any,
    field_names: Iterable[str],
) -> dict[str, list[str]]:
    """Every problem of a whole template, by the template's field name (url_template, body, ...)."""
    fields = set(field_names)
    errors: dict[str, list[str]] = {}

    def add(key: str, messages: Iterable[str]) -> None:
        for message in messages:
            errors.setdefault(key, []).append(message)

    if not url_template.startswith(("https://", "http://")):
        add("url_template", ["The endpoint must start with https:// or http://."])
    authority_problem = url_authority_problem(url_template)
    if authority_problem:
        add("url_template", [authority_problem])
    add("url_template", template_problems(url_template, field_names=fields))
    if encoding not in ENCODINGS:
        add("encoding", [f'unknown encoding "{encoding}" (known: {", ".join(ENCODINGS)})'])
    if not isinstance(query, dict):
        add("query", ["query: give an object of parameter name → value spec"])
    else:
        add("query", spec_problems(query, path="query", field_names=fields))
    if encoding in ("query", "form") and not isinstance(body, dict):
        add("body", [f"body: with the {encoding} encoding, give an object of parameter name → value spec"])
    else:
        add("body", spec_problems(body, path="body", field_names=fields))
    if not isinstance(headers, dict):
        add("headers", ["headers: give an object of header name → value spec"])
    else:
        for name, spec in headers.items():
            if not HEADER_NAME.match(name):
                add("headers", [f'headers: "{name}" is not a valid header name'])
            add("headers", spec_problems(spec, path=f"headers.{name}", field_names=fields))
    add("reply", reply_problems(reply))
    return errors


def reply_problems(reply: Any) -> list[str]:
    if not isinstance(reply, dict):
        return ["reply: give an object (retry, fail, checks)"]
    problems = [f'reply: unknown key "{key}" (known: retry, fail, checks)' for key in reply if key not in REPLY_KEYS]
    for key in ("retry", "fail"):
        statuses = reply.get(key, [])
        if not isinstance(statuses, list):
            problems.append(f'reply.{key}: give a list of statuses (e.g. 429) or classes (e.g. "5xx")')
            continue
        for index, status in enumerate(statuses):
            valid = (isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599) or (
                isinstance(status, str) and STATUS_CLASS.match(status) and status[0] in "45"
            )
            if not valid:
                problems.append(
                    f"reply.{key}[{index}]: {json.dumps(status)} is not a status 400-599 or a class 4xx, 5xx"
                )
    checks = reply.get("checks", [])
    if not isinstance(checks, list):
        return [*problems, "reply.checks: give a list of conditions"]
    for index, check in enumerate(checks):
        where = f"reply.checks[{index}]"
        if not isinstance(check, dict):
            problems.append(f"{where}: give an object")
            continue
        for key in check:
            if key not in ("path", "outcome", "message", "message_path", *REPLY_OPERATORS):
                problems.append(f'{where}: unknown key "{key}"')
        if not isinstance(check.get("path"), str) or not check["path"]:
            problems.append(f"{where}.path: give a path into the reply's JSON, e.g. data[0].code")
        operators = [key for key in check if key in REPLY_OPERATORS]
        if len(operators) != 1:
            problems.append(f"{where}: give exactly one of {', '.join(REPLY_OPERATORS)}")
        for key in ("empty", "exists"):
            if key in check and not isinstance(check[key], bool):
                problems.append(f"{where}.{key}: give true or false")
        if check.get("outcome") not in REPLY_OUTCOMES:
            problems.append(f"{where}.outcome: give one of {', '.join(REPLY_OUTCOMES)}")
    return problems


REPLY_KEYS = ("retry", "fail", "checks")


# --- rendering ----------------------------------------------------------------------------


@dataclass
class _Rendering:
    context: dict[str, str]
    problems: list[str] = field(default_factory=list)


def render_value(spec: Any, context: dict[str, str], *, path: str = "") -> tuple[Any, list[str]]:
    """The value a spec gives for these macro values (ABSENT when omitted), and its problems."""
    rendering = _Rendering(context=context)
    value = _render(spec, path, rendering)
    return value, rendering.problems


def _empty(value: Any) -> bool:
    return value is ABSENT or value is None or value == ""


def _lookup(name: str, rendering: _Rendering) -> str:
    value = rendering.context.get(name)
    return "" if value is None else str(value)


def fill_placeholders(text: str, values: dict[str, str], *, url_encode: bool) -> str:
    """Replace {name} placeholders; in URLs every value is encoded so it cannot add parameters."""

    def replace(match) -> str:
        value = str(values.get(match.group(1), "") or "")
        return quote(value, safe="", errors="replace") if url_encode else value

    return PLACEHOLDER.sub(replace, text)


def _render(spec: Any, path: str, rendering: _Rendering) -> Any:
    if isinstance(spec, str):
        text = fill_placeholders(spec, rendering.context, url_encode=False)
        return ABSENT if text == "" else text
    if spec is None or isinstance(spec, (bool, int, float)):
        return spec
    if isinstance(spec, list):
        items = [_render(item, f"{path}[{index}]", rendering) for index, item in enumerate(spec)]
        kept = [item for item in items if item is not ABSENT]
        return kept or ABSENT
    if any(key.startswith("$") for key in spec):
        return _render_spec_object(spec, path, rendering)
    rendered = {key: _render(value, f"{path}.{key}" if path else key, rendering) for key, value in spec.items()}
    kept = {key: value for key, value in rendered.items() if value is not ABSENT}
    return kept or ABSENT


def _render_spec_object(spec: dict, path: str, rendering: _Rendering) -> Any:
    if "$macro" in spec:
        value: Any = _lookup(spec["$macro"], rendering)
    elif "$first" in spec:
        value = ABSENT
        for item in spec["$first"]:
            candidate = _lookup(item, rendering) if isinstance(item, str) else _render(item, path, rendering)
            if not _empty(candidate):
                value = candidate
                break
    elif "$const" in spec:
        value = spec["$const"]
    elif "$template" in spec:
        value = fill_placeholders(spec["$template"], rendering.context, url_encode=False)
    else:
        inner = _render(spec["$json"], path, rendering)
        value = ABSENT if inner is ABSENT else json.dumps(inner, separators=(",", ":"))
    if not _empty(value):
        for name in spec.get("transforms", []):
            try:
                value = _TRANSFORMS[name](value)
            except (ValueError, TypeError, OverflowError, OSError):  # OSError: a time out of the platform's range
                rendering.problems.append(f"{path}: cannot apply {name} to {_shown(value, spec)}")
                value = ABSENT
                break
    if not _empty(value) and "map" in spec:
        key = _as_text(value)
        value = spec["map"].get(key, value if spec.get("unlisted") == "keep" else ABSENT)
    if _empty(value) and "default" in spec:
        value = spec["default"]
    if _empty(value):
        if spec.get("empty", "omit") == "send":
            return "" if spec.get("type", "string") == "string" else None
        return ABSENT
    kind = spec.get("type")
    if kind is None:
        return value
    try:
        return _CONVERSIONS[kind](value)
    except (ValueError, TypeError, ArithmeticError):
        rendering.problems.append(f"{path}: {_shown(value, spec)} is not a{'n' if kind == 'integer' else ''} {kind}")
        return ABSENT


def _shown(value: Any, spec: dict) -> str:
    """The value, for a problem message; not when it comes from a network-specific field,
    which may be a secret (problems are logged)."""
    if "fields." in json.dumps(spec):
        return "the value"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + '..."'


def _moment(value: Any) -> datetime:
    """A time given as Unix seconds (a number or digits) or as ISO 8601."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    text = str(value).strip()
    try:
        return datetime.fromtimestamp(float(Decimal(text)), tz=UTC)
    except InvalidOperation:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _to_integer(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    number = Decimal(str(value).strip())
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError("not whole")
    return int(number)


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    number = Decimal(str(value).strip())
    if not number.is_finite():
        raise ValueError("not finite")
    if number == number.to_integral_value() and "." not in str(value):
        return int(number)
    result = float(number)
    if not math.isfinite(result):  # 1e400: JSON has no infinity
        raise ValueError("out of range")
    return result


_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


_CONVERSIONS = {"string": _as_text, "integer": _to_integer, "number": _to_number, "boolean": _to_boolean}
_TRANSFORMS = {
    "unix_seconds": lambda value: int(_moment(value).timestamp()),
    "unix_ms": lambda value: round(_moment(value).timestamp() * 1000),
    "iso8601": lambda value: _moment(value).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "lower": lambda value: _as_text(value).lower(),
    "upper": lambda value: _as_text(value).upper(),
    "trim": lambda value: _as_text(value).strip(),
    "sha256": lambda value: hashlib.sha256(_as_text(value).encode("utf-8", "replace")).hexdigest(),
    "md5": lambda value: hashlib.md5(_as_text(value).encode("utf-8", "replace"), usedforsecurity=False).hexdigest(),
    # A BCP 47 tag's language subtag, for partners that take ISO 639-1 (Liftoff): "en-US" -> "en".
    "primary_language": lambda value: _as_text(value).split("-")[0].lower(),
}


# --- a whole request ----------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: str
    problems: tuple[str, ...] = ()


def append_query(url: str, params: list[tuple[str, str]]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params, errors="replace")) if part)
    # The fragment is never sent over HTTP, so it is dropped rather than left after the query.
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _pairs(specs: dict, path: str, rendering: _Rendering) -> list[tuple[str, str]]:
    pairs = []
    for name, spec in specs.items():
        value = _render(spec, f"{path}.{name}", rendering)
        if value is not ABSENT:
            pairs.append((name, _as_text(value)))
    return pairs


def render_request(
    *,
    method: str,
    url_template: str,
    encoding: str,
    query: dict,
    body: Any,
    headers: dict,
    context: dict[str, str],
) -> TemplateRequest:
    """The exact HTTP request a template gives for these values (placeholders and fields filled).

    `query` always goes in the URL; `body` goes in the URL too with the query encoding, else in
    the body (form-urlencoded or JSON). Header values are text; one that would hold a line
    break or a non-ASCII character is refused (left out, and reported)."""
    rendering = _Rendering(context=context)
    url = fill_placeholders(url_template, context, url_encode=True)
    params = _pairs(query, "query", rendering)
    sent_headers: dict[str, str] = {}
    text = ""
    if encoding == "query":
        params += _pairs(body, "body", rendering)
    elif encoding == "form":
        text = urlencode(_pairs(body, "body", rendering), errors="replace")
        sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        value = _render(body, "body", rendering)
        text = json.dumps({} if value is ABSENT else value, separators=(",", ":"))
        sent_headers["Content-Type"] = "application/json"
    for name, value in _pairs(headers, "headers", rendering):
        # Whitespace around a field value is not part of it (RFC 9110, 5.5), and requests
        # refuses a value that starts with it.
        value = value.strip(" \t")
        if value == "":
            continue
        if HEADER_VALUE.match(value):
            sent_headers[name] = value
        else:
            rendering.problems.append(f"headers.{name}: left out, the value holds a line break or non-ASCII text")
    return TemplateRequest(
        method=method,
        url=append_query(url, params),
        headers=sent_headers,
        body=text,
        problems=tuple(rendering.problems),
    )


# --- reading the reply ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyVerdict:
    outcome: str  # delivered, retry or failed
    message: str


def _status_listed(status: int, statuses: list) -> bool:
    return any(item == status or item == f"{status // 100}xx" for item in statuses)


def _at_path(document: Any, path: str) -> Any:
    """The value at a simple path (`a.b`, `data[0].code`), or ABSENT."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(document, list) or index >= len(document):
                return ABSENT
            document = document[index]
        elif isinstance(document, dict) and part in document:
            document = document[part]
        else:
            return ABSENT
    return document


def _holds(check: dict, value: Any) -> bool:
    if "exists" in check:
        return (value is not ABSENT) == check["exists"]
    if "empty" in check:
        return (value is ABSENT or value in (None, "", [], {})) == check["empty"]
    if "equals" in check:
        return value is not ABSENT and _same(value, check["equals"])
    return value is ABSENT or not _same(value, check["not_equals"])


def _same(value: Any, expected: Any) -> bool:
    # JSON's false is not 0: compare types too, so {"install": 0} is not {"install": false}.
    return type(value) is type(expected) and value == expected


def reply_verdict(*, rules: dict | None, status: int, body: str) -> ReplyVerdict:
    """What a partner's HTTP reply means under a template's reply rules (no rules: status alone).

    2xx is delivered unless a check on the reply's JSON says otherwise; `fail` lists statuses
    (or classes, "4xx") that are permanent failures, `retry` those retried (default 408, 429
    and 5xx); any other status fails. Checks run in order; the first that holds decides."""
    rules = rules or {}
    if 200 <= status < 300:
        try:
            document = json.loads(body) if body else ABSENT
        except ValueError:
            document = ABSENT
        for check in rules.get("checks", []):
            value = _at_path(document, check["path"])
            if not _holds(check, value):
                continue
            detail = check.get("message") or _condition(check)
            if check.get("message_path"):
                said = _at_path(document, check["message_path"])
                if said is not ABSENT:
                    detail = f"{detail}: {_as_text(said)}"
            if check["outcome"] == "not_chargeable":
                return ReplyVerdict("delivered", f"not chargeable ({detail})")
            return ReplyVerdict(check["outcome"], f"HTTP {status}, the reply says {detail}")
        return ReplyVerdict("delivered", "")
    if _status_listed(status, rules.get("fail", [])):
        return ReplyVerdict("failed", f"HTTP {status}: the receiver refused it, not retried")
    if _status_listed(status, rules.get("retry", DEFAULT_RETRY)):
        return ReplyVerdict("retry", f"HTTP {status}")
    if 300 <= status < 400:
        return ReplyVerdict("failed", f"HTTP {status}: redirect not followed")
    return ReplyVerdict("failed", f"HTTP {status}: the receiver refused it, not retried")


DEFAULT_RETRY = [408, 429, "5xx"]


def _condition(check: dict) -> str:
    for operator in REPLY_OPERATORS:
        if operator in check:
            shown = {"equals": "=", "not_equals": "≠"}.get(operator)
            if shown:
                return f"{check['path']} {shown} {json.dumps(check[operator])}"
            return f"{check['path']} {'is' if check[operator] else 'is not'} {operator.replace('exists', 'present')}"
    return check["path"]  # pragma: no cover - validated
