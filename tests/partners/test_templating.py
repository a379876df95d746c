"""The partner template language (partners/templating.py): pure functions, no database."""

import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from partners.macros import MACRO_NAMES
from partners.templating import (
    ABSENT,
    HEADER_VALUE,
    TRANSFORMS,
    TYPES,
    render_request,
    render_value,
    reply_verdict,
    spec_problems,
    template_spec_problems,
)

VALUES = {
    "adid": "38400000-8CF0-11BD-B23E-10B96E40000D",
    "idfa": "",
    "idfv": "599F9C00-92DC-4B5C-9464-7971F01F8370",
    "device_id": "device-4f2a",
    "revenue": "4.99",
    "currency": "usd",
    "event_time": "2026-11-23T12:00:00.250Z",
    "event_timestamp": "1795435200",
    "limit_ad_tracking": "0",
    "platform": "android",
    "app_id": "com.example.game",
    "app_version": "3.2.1",
    "os_version": "14",
    "event_name": "purchase",
    "event_value": "",
    "ip": "203.0.113.7",
    "user_agent": "Dalvik/2.1.0 (Linux; U; Android 14)",
    "click_id": "clk-1",
    "fields.token": "s3cr3t-token",
    "fields.app_id": "98765",
}
FIELDS = {"token", "app_id"}


def value(spec):
    result, problems = render_value(spec, VALUES, path="v")
    assert problems == []
    return result


# --- values ---------------------------------------------------------------------------------


def test_a_string_is_a_template_and_constants_are_themselves():
    assert value("{event_name}:{currency}") == "purchase:usd"
    assert value(3) == 3 and value(2.5) == 2.5 and value(True) is True and value(None) is None
    assert value({"$const": {"a": [1, "{x}"]}}) == {"a": [1, "{x}"]}  # a constant is not a template
    assert value({"$template": "v{app_version}"}) == "v3.2.1"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"$macro": "revenue", "type": "number"}, 4.99),
        ({"$macro": "event_timestamp", "type": "integer"}, 1795435200),
        ({"$macro": "limit_ad_tracking", "type": "boolean"}, False),
        ({"$const": "true", "type": "boolean"}, True),
        ({"$const": 7, "type": "string"}, "7"),
        ({"$const": False, "type": "string"}, "false"),
        ({"$const": True, "type": "integer"}, 1),
        ({"$const": "5", "type": "number"}, 5),
    ],
)
def test_types(spec, expected):
    result = value(spec)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"$const": "abc", "type": "integer"}, 'v: "abc" is not an integer'),
        ({"$macro": "revenue", "type": "integer"}, 'v: "4.99" is not an integer'),
        ({"$const": "maybe", "type": "boolean"}, 'v: "maybe" is not a boolean'),
        ({"$const": "NaN", "type": "number"}, 'v: "NaN" is not a number'),
        ({"$const": "1.5e400", "type": "number"}, 'v: "1.5e400" is not a number'),  # JSON has no infinity
        ({"$macro": "app_id", "transforms": ["unix_seconds"]}, 'v: cannot apply unix_seconds to "com.example.game"'),
        ({"$macro": "fields.token", "type": "integer"}, "v: the value is not an integer"),  # a secret is never quoted
    ],
)
def test_what_cannot_be_converted_is_left_out_and_reported_never_raised(spec, message):
    assert render_value(spec, VALUES, path="v") == (ABSENT, [message])


@pytest.mark.parametrize(
    ("transforms", "expected"),
    [
        (["unix_seconds"], 1795435200),
        (["unix_ms"], 1795435200250),
        (["iso8601"], "2026-11-23T12:00:00Z"),
        (["lower"], "2026-11-23t12:00:00.250z"),
    ],
)
def test_time_transforms_read_iso_8601(transforms, expected):
    assert value({"$macro": "event_time", "transforms": transforms}) == expected


def test_time_transforms_read_unix_seconds_too():
    assert value({"$macro": "event_timestamp", "transforms": ["unix_ms"]}) == 1795435200000
    assert value({"$macro": "event_timestamp", "transforms": ["iso8601"]}) == "2026-11-23T12:00:00Z"


def test_case_trim_and_hashes_of_the_normalised_value():
    assert value({"$macro": "adid", "transforms": ["lower"]}) == VALUES["adid"].lower()
    assert value({"$macro": "currency", "transforms": ["upper"]}) == "USD"
    assert value({"$const": "  a b ", "transforms": ["trim"]}) == "a b"
    lowered = VALUES["adid"].lower().encode()
    assert value({"$macro": "adid", "transforms": ["lower", "sha256"]}) == hashlib.sha256(lowered).hexdigest()
    assert value({"$macro": "adid", "transforms": ["upper", "md5"]}) == hashlib.md5(VALUES["adid"].encode()).hexdigest()


@pytest.mark.parametrize(
    ("tag", "expected"), [("en-US", "en"), ("pt-BR", "pt"), ("en", "en"), ("zh-Hant-TW", "zh"), ("EN", "en")]
)
def test_primary_language_keeps_a_language_tags_language_subtag(tag, expected):
    assert value({"$const": tag, "transforms": ["primary_language"]}) == expected


def test_map_translates_our_values_and_leaves_out_what_it_does_not_know():
    table = {"android": "a2", "ios": "i2"}
    assert value({"$macro": "platform", "map": table}) == "a2"
    assert value({"$const": "web", "map": table}) is ABSENT
    assert value({"$const": "web", "map": table, "default": "x"}) == "x"
    assert value({"$macro": "limit_ad_tracking", "map": {"0": True, "1": False}}) is True


def test_a_map_may_keep_what_it_does_not_list():
    names = {"purchase": "", "level_complete": ""}  # Unity's own names: no custom_event for them
    assert value({"$const": "boss_defeated", "map": names, "unlisted": "keep"}) == "boss_defeated"
    assert value({"$const": "purchase", "map": names, "unlisted": "keep"}) is ABSENT
    assert value({"$const": "boss_defeated", "map": names, "unlisted": "omit"}) is ABSENT
    assert spec_problems({"$const": "x", "unlisted": "keep"}, path="body.e") == [
        'body.e.unlisted: give "omit" or "keep", beside a map'
    ]
    assert spec_problems({"$const": "x", "map": {}, "unlisted": "always"}, path="body.e") == [
        'body.e.unlisted: give "omit" or "keep", beside a map'
    ]


def test_first_non_empty_takes_the_first_macro_with_a_value():
    assert value({"$first": ["idfa", "adid"]}) == VALUES["adid"]
    assert value({"$first": ["idfa", "event_value"]}) is ABSENT
    assert value({"$first": ["idfa", {"$const": "none"}]}) == "none"


def test_empty_values_are_omitted_by_default_or_sent_when_asked():
    assert value("{idfa}") is ABSENT
    assert value({"$macro": "idfa"}) is ABSENT
    assert value({"$macro": "idfa", "empty": "send"}) == ""
    assert value({"$macro": "idfa", "type": "integer", "empty": "send"}) is None
    assert value({"$macro": "idfa", "default": 0}) == 0
    assert value({"a": "{idfa}", "b": {"c": "{idfa}"}, "d": ["{idfa}"]}) is ABSENT  # left empty: gone too
    assert value({"a": "{idfa}", "b": {"c": "{adid}", "d": "{idfa}"}}) == {"b": {"c": VALUES["adid"]}}


def test_nested_objects_and_arrays_to_any_depth():
    spec = {"a": [{"b": [{"c": {"$macro": "revenue", "type": "number"}}]}], "n": [1, "{currency}"]}
    assert value(spec) == {"a": [{"b": [{"c": 4.99}]}], "n": [1, "usd"]}


def test_json_encodes_a_nested_structure_into_one_string():
    spec = {"$json": [{"_eventName": "{event_name}", "_valueToSum": {"$macro": "revenue", "type": "number"}}]}
    assert value(spec) == '[{"_eventName":"purchase","_valueToSum":4.99}]'
    assert value({"$json": {"a": "{idfa}"}}) is ABSENT


# --- requests -----------------------------------------------------------------------------


def request(**template):
    template = {"method": "POST", "query": {}, "body": {}, "headers": {}, **template}
    return render_request(context=VALUES, **template)


def test_query_encoding_puts_query_and_body_in_the_url_values_encoded():
    sent = request(
        method="GET",
        url_template="https://p.test/{fields.app_id}/in?fixed=1",
        encoding="query",
        query={"token": "{fields.token}"},
        body={"ua": "{user_agent}", "gone": "{idfa}", "n": {"$macro": "revenue", "type": "number"}},
    )
    parts = urlsplit(sent.url)
    assert parts.path == "/98765/in" and sent.body == "" and sent.headers == {}
    assert parse_qs(parts.query) == {
        "fixed": ["1"],
        "token": ["s3cr3t-token"],
        "ua": [VALUES["user_agent"]],
        "n": ["4.99"],
    }


def test_form_encoding():
    sent = request(url_template="https://p.test/in", encoding="form", body={"a": "x&y=z", "b": {"$const": True}})
    assert sent.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    assert parse_qs(sent.body) == {"a": ["x&y=z"], "b": ["true"]}


def test_json_encoding_with_query_parameters_beside_it():
    sent = request(url_template="https://p.test/in", encoding="json", query={"k": "{fields.token}"}, body=[{"x": 1}])
    assert sent.url == "https://p.test/in?k=s3cr3t-token"
    assert sent.headers == {"Content-Type": "application/json"} and json.loads(sent.body) == [{"x": 1}]


def test_headers_from_macros_and_secret_fields():
    sent = request(
        url_template="https://p.test/in",
        encoding="json",
        headers={"Authorization": "Bearer {fields.token}", "User-Agent": "{user_agent}", "X-Empty": "{idfa}"},
    )
    assert sent.headers["Authorization"] == "Bearer s3cr3t-token"
    assert sent.headers["User-Agent"] == VALUES["user_agent"]
    assert "X-Empty" not in sent.headers


def test_a_header_value_with_a_line_break_is_refused_and_reported():
    context = {**VALUES, "user_agent": "evil\r\nX-Injected: 1"}
    sent = render_request(
        method="GET",
        url_template="https://p.test/",
        encoding="query",
        query={},
        body={},
        headers={"User-Agent": "{user_agent}"},
        context=context,
    )
    assert "User-Agent" not in sent.headers
    assert sent.problems == ("headers.User-Agent: left out, the value holds a line break or non-ASCII text",)


# --- what each partner needs (SUMMARY.md's shapes) -------------------------------------------


def test_meta_custom_events_as_a_json_array_of_objects_in_a_form_value():
    sent = request(
        url_template="https://graph.facebook.com/v21.0/{fields.app_id}/activities",
        encoding="form",
        body={
            "event": "CUSTOM_APP_EVENTS",
            "advertiser_id": {"$first": ["idfa", "adid"]},
            "custom_events": {
                "$json": [
                    {
                        "_eventName": "fb_mobile_purchase",
                        "_valueToSum": {"$macro": "revenue", "type": "number"},
                        "fb_currency": {"$macro": "currency", "transforms": ["upper"]},
                        "_logTime": {"$macro": "event_time", "transforms": ["unix_seconds"]},
                    }
                ]
            },
            "extinfo": {
                "$json": [
                    {"$macro": "platform", "map": {"android": "a2", "ios": "i2"}},
                    "{app_id}",
                    {"$macro": "idfa", "empty": "send"},
                ]
            },
        },
    )
    form = parse_qs(sent.body)
    assert form["advertiser_id"] == [VALUES["adid"]]
    assert json.loads(form["custom_events"][0]) == [
        {"_eventName": "fb_mobile_purchase", "_valueToSum": 4.99, "fb_currency": "USD", "_logTime": 1795435200}
    ]
    assert json.loads(form["extinfo"][0]) == ["a2", "com.example.game", ""]


def test_tiktok_nested_data_with_an_access_token_header_from_a_secret_field():
    sent = request(
        url_template="https://business-api.tiktok.com/open_api/v1.3/event/track/",
        encoding="json",
        headers={"Access-Token": "{fields.token}"},
        body={
            "event_source": "app",
            "event_source_id": "{fields.app_id}",
            "data": [
                {
                    "event": "Purchase",
                    "event_time": {"$macro": "event_time", "transforms": ["unix_seconds"]},
                    "user": {
                        "gaid": {"$macro": "adid", "transforms": ["lower", "sha256"]},
                        "idfa": {"$macro": "idfa", "transforms": ["lower", "sha256"]},
                        "att_status": {"$macro": "limit_ad_tracking", "map": {"0": "AUTHORIZED", "1": "DENIED"}},
                    },
                    "properties": {"value": {"$macro": "revenue", "type": "number"}, "currency": "{currency}"},
                    "limited_data_use": {"$macro": "limit_ad_tracking", "type": "boolean"},
                }
            ],
        },
    )
    assert sent.headers["Access-Token"] == "s3cr3t-token"
    body = json.loads(sent.body)
    assert body["event_source_id"] == "98765"
    [item] = body["data"]
    assert item["event_time"] == 1795435200
    assert item["user"] == {
        "gaid": hashlib.sha256(VALUES["adid"].lower().encode()).hexdigest(),
        "att_status": "AUTHORIZED",
    }
    assert item["properties"] == {"value": 4.99, "currency": "usd"}
    assert item["limited_data_use"] is False


def test_google_query_parameters_with_device_user_agent_and_ip_headers():
    sent = request(
        url_template="https://www.googleadservices.com/pagead/conversion/app/1.0",
        encoding="query",
        query={"dev_token": "{fields.token}", "link_id": "{fields.app_id}"},
        body={
            "app_event_type": "in_app_purchase",
            "rdid": {"$first": ["adid", "idfa"]},
            "id_type": {"$macro": "platform", "map": {"android": "advertisingid", "ios": "idfa"}},
            "lat": {"$macro": "limit_ad_tracking", "type": "integer"},
            "timestamp": {"$macro": "event_time", "transforms": ["unix_seconds"]},
        },
        headers={"User-Agent": "{user_agent}", "X-Forwarded-For": "{ip}"},
    )
    query = parse_qs(urlsplit(sent.url).query)
    assert query["id_type"] == ["advertisingid"] and query["lat"] == ["0"] and query["timestamp"] == ["1795435200"]
    assert query["dev_token"] == ["s3cr3t-token"]
    assert sent.headers == {"User-Agent": VALUES["user_agent"], "X-Forwarded-For": "203.0.113.7"}


def test_unity_upper_case_idfa_or_its_md5():
    idfa = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    body = {
        "advertisingTrackingId": {"$macro": "idfa", "transforms": ["upper"]},
        "advertisingTrackingIdMD5": {"$macro": "idfa", "transforms": ["upper", "md5"]},
    }
    sent = render_request(
        method="GET",
        url_template="https://u.test/games/1/install",
        encoding="query",
        query={},
        body=body,
        headers={},
        context={"idfa": idfa},
    )
    query = parse_qs(urlsplit(sent.url).query)
    assert query["advertisingTrackingId"] == [idfa.upper()]
    assert query["advertisingTrackingIdMD5"] == [hashlib.md5(idfa.upper().encode()).hexdigest()]


def test_snapchat_sha256_of_a_normalised_id_and_milliseconds():
    body = {
        "hashed_mobile_ad_id": {"$first": ["idfa", "adid"], "transforms": ["trim", "lower", "sha256"]},
        "hashed_ip_address": {"$macro": "ip", "transforms": ["sha256"]},
        "timestamp": {"$macro": "event_time", "transforms": ["unix_ms"]},
    }
    result = value(body)
    assert result["hashed_mobile_ad_id"] == hashlib.sha256(VALUES["adid"].lower().encode()).hexdigest()
    assert result["hashed_ip_address"] == hashlib.sha256(b"203.0.113.7").hexdigest()
    assert result["timestamp"] == 1795435200250


def test_amplitude_events_array_with_integer_milliseconds():
    body = {
        "api_key": "{fields.token}",
        "events": [
            {
                "device_id": "{device_id}",
                "event_type": "{event_name}",
                "time": {"$macro": "event_timestamp", "transforms": ["unix_ms"]},
                "revenue": {"$macro": "revenue", "type": "number"},
            }
        ],
    }
    assert value(body) == {
        "api_key": "s3cr3t-token",
        "events": [{"device_id": "device-4f2a", "event_type": "purchase", "time": 1795435200000, "revenue": 4.99}],
    }


# --- reply rules ----------------------------------------------------------------------------

UNITY = {"checks": [{"path": "install", "equals": False, "outcome": "not_chargeable"}]}
TIKTOK = {"checks": [{"path": "code", "not_equals": 0, "outcome": "failed", "message_path": "message"}]}
GOOGLE = {"checks": [{"path": "errors", "empty": False, "outcome": "failed", "message_path": "errors[0].message"}]}


@pytest.mark.parametrize(
    ("rules", "status", "body", "outcome", "message"),
    [
        (None, 200, "", "delivered", ""),
        (None, 404, "", "failed", "HTTP 404: the receiver refused it, not retried"),
        (None, 429, "", "retry", "HTTP 429"),
        (None, 503, "", "retry", "HTTP 503"),
        ({"fail": [503]}, 503, "", "failed", "HTTP 503: the receiver refused it, not retried"),
        ({"retry": [409, "5xx"]}, 409, "", "retry", "HTTP 409"),
        ({"retry": [409]}, 500, "", "failed", "HTTP 500: the receiver refused it, not retried"),
        (UNITY, 200, '{"status": "ok", "install": false}', "delivered", "not chargeable (install = false)"),
        (UNITY, 200, '{"status": "ok", "install": true}', "delivered", ""),
        (UNITY, 200, '{"install": 0}', "delivered", ""),  # 0 is not false
        (
            TIKTOK,
            200,
            '{"code": 40001, "message": "bad token"}',
            "failed",
            "HTTP 200, the reply says code ≠ 0: bad token",
        ),
        (TIKTOK, 200, '{"code": 0, "message": "OK"}', "delivered", ""),
        (TIKTOK, 200, "not json", "failed", "HTTP 200, the reply says code ≠ 0"),
        (
            GOOGLE,
            200,
            '{"errors": [{"message": "bad rdid"}]}',
            "failed",
            "HTTP 200, the reply says errors is not empty: bad rdid",
        ),
        (GOOGLE, 200, '{"errors": [], "attributed": true}', "delivered", ""),
    ],
)
def test_reply_rules(rules, status, body, outcome, message):
    verdict = reply_verdict(rules=rules, status=status, body=body)
    assert (verdict.outcome, verdict.message) == (outcome, message)


# --- validation -------------------------------------------------------------------------------


def test_validation_errors_name_their_path():
    spec = {
        "data": [
            {
                "user": {"idfa": {"$macro": "idfa", "transforms": ["lower", "sha1"]}},
                "n": {"$macro": "nope", "type": "float", "empty": "maybe", "colour": 1},
                "both": {"$macro": "adid", "$const": 1},
                "f": {"$first": ["adid", "fields.missing"]},
            }
        ]
    }
    assert spec_problems(spec, path="body", field_names=FIELDS) == [
        'body.data[0].user.idfa.transforms[1]: unknown transform "sha1" '
        "(known: unix_seconds, unix_ms, iso8601, lower, upper, trim, sha256, md5, primary_language)",
        'body.data[0].n: unknown key "colour" '
        "(sources: $macro, $first, $const, $template, $json; options: type, transforms, map, unlisted, default, empty)",
        "body.data[0].n.$macro: {nope} is not a known macro (see docs/macros.md).",
        'body.data[0].n.type: unknown type "float" (known: string, integer, number, boolean)',
        'body.data[0].n.empty: give "omit" or "send"',
        "body.data[0].both: give exactly one of $macro, $first, $const, $template, $json (found 2)",
        "body.data[0].f.$first[1]: {fields.missing} names no network-specific field of this partner "
        "(known: app_id, token).",
    ]
    assert spec_problems({"x": float("inf")}, path="body") == ["body.x: inf is not a number JSON can carry"]


def test_a_whole_template_is_checked_part_by_part():
    errors = template_spec_problems(
        url_template="https://{fields.app_id}.p.test/x",
        encoding="xml",
        query={"a": "{nope}"},
        body={},
        headers={"Bad Header": "x", "X-Ok": {"$macro": "ip", "map": []}},
        reply={"retry": [200, "5xx"], "checks": [{"path": "code", "equals": 0, "outcome": "explode"}], "other": 1},
        field_names=FIELDS,
    )
    assert errors == {
        "url_template": [
            "{fields.app_id} stands in the scheme, host or port: a placeholder may fill the path and query only, "
            "never choose where the request goes."
        ],
        "encoding": ['unknown encoding "xml" (known: query, form, json)'],
        "query": ["query.a: {nope} is not a known macro (see docs/macros.md)."],
        "headers": [
            'headers: "Bad Header" is not a valid header name',
            "headers.X-Ok.map: give an object of our value → the partner's",
        ],
        "reply": [
            'reply: unknown key "other" (known: retry, fail, checks)',
            "reply.retry[0]: 200 is not a status 400-599 or a class 4xx, 5xx",
            "reply.checks[0].outcome: give one of failed, retry, not_chargeable",
        ],
    }


# --- no macro value can break a request ---------------------------------------------------------

hostile = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["\r\nX-Injected: 1", "a&b=c#d", '"},{"x":1', "\x00", "../..", "%0d%0a", "é☃", " ", "{adid}"]
)


@settings(max_examples=150, deadline=None)
@example(values={"user_agent": " Dalvik/2.1.0", "ip": "\t"}, encoding="query")
@example(values={"user_agent": "evil\r\nX-Injected: 1", "ip": "é"}, encoding="json")
@given(
    values=st.dictionaries(st.sampled_from(sorted(MACRO_NAMES)), hostile, max_size=12),
    encoding=st.sampled_from(["query", "form", "json"]),
)
def test_no_macro_value_can_break_a_url_a_body_or_a_header(values, encoding):
    names = sorted(MACRO_NAMES)
    body = {name: f"{{{name}}}" for name in names} | {"nested": [{"$json": {name: {"$macro": name} for name in names}}]}
    sent = render_request(
        method="POST",
        url_template="https://p.test/in/{adid}/x?fixed=1",
        encoding=encoding,
        query={"q": "{user_agent}"},
        body=body,
        headers={"User-Agent": "{user_agent}", "X-Forwarded-For": "{ip}"},
        context=values,
    )
    parts = urlsplit(sent.url)
    # The URL: the host and the fixed path stay, and every value comes back whole from its parameter.
    assert (parts.scheme, parts.netloc, parts.fragment) == ("https", "p.test", "")
    assert parts.path.startswith("/in/") and parts.path.endswith("/x") and parts.path.count("/") == 3
    assert all(c.isascii() and c.isprintable() and c != " " for c in sent.url)
    query = parse_qs(parts.query, keep_blank_values=True)
    assert query["fixed"] == ["1"]
    if values.get("user_agent"):
        assert query["q"] == [values["user_agent"]]
    received = {**query, **(parse_qs(sent.body, keep_blank_values=True) if encoding == "form" else {})}
    if encoding == "json":
        document = json.loads(sent.body)
        received = {name: [text] for name, text in document.items() if isinstance(text, str)}
        assert set(document) <= {*names, "nested"}
    for name in names:
        if values.get(name):
            assert received[name] == [values[name]]
    # Headers: a value that would break the header block is never sent.
    for header_value in sent.headers.values():
        assert HEADER_VALUE.match(header_value) and "\r" not in header_value and "\n" not in header_value
        assert header_value == header_value.strip() != ""  # requests refuses leading whitespace


@settings(max_examples=300, deadline=None)
@example(raw="1.5e400", transforms=[], kind="number")
@given(
    raw=hostile
    | st.sampled_from(
        ["1e400", "1.5e400", "-1e400", "9" * 40, "1795435200.5", "NaN", "Infinity", "2026-13-45T99:00:00Z"]
    ),
    transforms=st.lists(st.sampled_from(list(TRANSFORMS)), max_size=3),
    kind=st.sampled_from([None, *TYPES]),
)
def test_no_value_makes_a_transform_or_a_type_raise_or_give_invalid_json(raw, transforms, kind):
    spec = {"$macro": "event_value", "transforms": transforms} | ({"type": kind} if kind else {})
    result, problems = render_value({"v": spec}, {"event_value": raw})
    if result is not ABSENT:
        json.loads(json.dumps(result, allow_nan=False))  # valid JSON: no NaN or infinity
    assert all(problem.startswith("v: ") for problem in problems)
