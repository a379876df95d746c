"""The public REST API for client apps (thin: validate, call the ingest service, reply)."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.utils.json import strict_constant
from rest_framework.views import APIView

from events.api_auth import AppKeyAuthentication, PerAppKeyRateThrottle, app_for_authorization, app_within_rate_limit
from events.app_cache import app_profile
from events.models import DEVICE_ID_KINDS, App, Event, Tracker
from events.rate_limit import click_within_rate_limit
from events.serializers import (
    MAX_BATCH,
    MAX_JSON_DEPTH,
    BatchResultSerializer,
    BatchSerializer,
    ErrorSerializer,
    EventAcceptedSerializer,
    EventSerializer,
    event_input_from,
    event_validated_fast,
    json_problem,
    normalize_device_ids,
)
from events.services import EventInput, click_record
from project import clock
from project.client_ip import caller_ip
from project.ingest import ItemRefused, event_ingest, events_ingest

# The content types whose body DRF reads as UTF-8 JSON: the plain path takes only these.
PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def reject_oversized(request, limit: int) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLarge(f"Request body of {length} bytes is over the limit of {limit} bytes.")


def accepted_body(event: Event) -> dict:
    return {"event_id": event.event_id, "id": event.pk, "postbacks_scheduled": event.postbacks_scheduled}


def item_errors(error: ValidationError) -> dict:
    """An item's errors as an object of field names, as a lone event's 400 gives them: an
    item that is not an object at all (null, say) has its errors under non_field_errors."""
    detail = error.detail
    return detail if isinstance(detail, dict) else {api_settings.NON_FIELD_ERRORS_KEY: detail}


def refused_errors(refused: ItemRefused) -> dict:
    return {api_settings.NON_FIELD_ERRORS_KEY: [refused.error]}


def json_reply(body: dict, *, status: int) -> HttpResponse:
    """A JSON reply as DRF's JSONRenderer writes it, without building a DRF Response and
    rendering it: that machinery cost a lone event more CPU than json.dumps itself."""
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return HttpResponse(content.encode(), status=status, content_type="application/json")


# A body nested deeper than Python's JSON parser can recurse (about 1,000 levels) is read
# again with every container below this depth cut to null. Whatever held it is refused
# anyway (no field takes more than MAX_JSON_DEPTH levels), in its place: the rest is kept.
PARSE_DEPTH = 100
assert PARSE_DEPTH > MAX_JSON_DEPTH + 3  # a batch's body, its list, the item, then the field
# A JSON string, or one bracket with whatever precedes it that is neither string nor bracket.
_NEXT_BRACKET = re.compile(r'(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^"\[\]{}])*([\[\]{}])')


def json_from_body(body: bytes, encoding: str):
    """A request body's JSON, read as DRF's JSONParser reads it (strict: no NaN); ValueError
    (UnicodeDecodeError included) when it is not JSON in that encoding."""
    text = body.decode(encoding)
    try:
        return json.loads(text, parse_constant=strict_constant)
    except RecursionError:
        return json.loads(_cut_below(text, PARSE_DEPTH), parse_constant=strict_constant)


def _cut_below(text: str, depth: int) -> str:
    """JSON text with each container that opens deeper than `depth` replaced by null."""
    pieces, kept_from, level, cut_from = [], 0, 0, -1
    for match in _NEXT_BRACKET.finditer(text):
        if match.group(1) in "[{":
            level += 1
            if level == depth + 1:
                cut_from = match.start(1)
        else:
            if level == depth + 1:
                pieces += [text[kept_from:cut_from], "null"]
                kept_from = match.end(1)
            level -= 1
    if level > depth:  # never closed: invalid JSON whatever the cut
        return text[:cut_from]
    pieces.append(text[kept_from:])
    return "".join(pieces)


class JSONBody(JSONParser):
    """DRF's JSONParser, decoding the body in one piece instead of through a stream reader."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            return json_from_body(stream.read(), encoding)
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from error


class JSONReplies(DefaultContentNegotiation):
    """Apps get JSON whatever they accept: no Accept header parsed on every request; and a
    body's parser is found by its plain media type before DRF's general matching."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        media_type = (request.content_type or "").partition(";")[0].strip().lower()
        for parser in parsers:
            if parser.media_type == media_type:
                return parser
        return super().select_parser(request, parsers)


class AppAPIView(APIView):
    content_negotiation_class = JSONReplies
    parser_classes = [JSONBody]
    authentication_classes = [AppKeyAuthentication]
    throttle_classes = [PerAppKeyRateThrottle]
    permission_classes = []
    body_limit = 0

    def initial(self, request, *args, **kwargs):
        reject_oversized(request, self.body_limit)  # before authentication reads anything
        super().initial(request, *args, **kwargs)


# What the schema says of the replies both endpoints share: every refusal of the whole
# request. The schema test (tests/events/test_schema_fuzz.py) holds the replies to it.
FIELD_ERRORS = {"type": "object", "additionalProperties": True}
REFUSALS = {
    401: OpenApiResponse(ErrorSerializer, "Missing or unknown API key."),
    413: OpenApiResponse(ErrorSerializer, "Body over the size cap (64 KB for one event, 4 MB for a batch)."),
    415: OpenApiResponse(ErrorSerializer, "Not a JSON body (Content-Type application/json)."),
    429: OpenApiResponse(ErrorSerializer, "Over the per-key rate limit; nothing stored. Retry after Retry-After."),
    503: OpenApiResponse(ErrorSerializer, "Database unreachable; nothing stored. Retry after Retry-After."),
}
EXAMPLE_EVENT = {
    "event_id": "evt-1",
    "event": "install",
    "device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"},
    "country": "US",
    "properties": {"store": "play"},
}
REFUSAL_HEADERS = [
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        required=True,
        response=[429, 503],
        description="Seconds to wait before trying again.",
    ),
    OpenApiParameter("WWW-Authenticate", str, OpenApiParameter.HEADER, required=True, response=[401]),
]


class EventView(AppAPIView):
    body_limit = settings.API_MAX_EVENT_BYTES

    def dispatch(self, request, *args, **kwargs):
        """A plain request goes straight to the ingest service: a JSON body (UTF-8, as DRF
        reads it), within the size cap, a valid key within its rate limit, and an event the
        fast validation takes. Anything else, every refusal included, goes through DRF's
        full cycle, which decides and explains. DRF's per-request machinery (its request
        wrapper, negotiation, authenticator and parser objects) cost a lone event a tenth
        of its CPU."""
        try:
            response = self.plain_post(request)
        except Exception as error:  # e.g. the database is away: DRF's handler words it (503)
            return self.exception_reply(request, error, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs) if response is None else response

    def plain_post(self, request) -> HttpResponse | None:
        meta = request.META
        if request.method != "POST" or meta.get("CONTENT_TYPE", "").lower() not in PLAIN_JSON:
            return None
        length = meta.get("CONTENT_LENGTH")
        if not (length and length.isdigit() and int(length) <= self.body_limit):
            return None
        app = app_for_authorization(meta.get("HTTP_AUTHORIZATION", ""))
        if app is None:
            return None
        try:
            item = json_from_body(request.body, "utf-8")
        except ValueError:
            return None
        data = event_validated_fast(item, event_names=app_profile(app).event_names)
        # The rate limit counts last: a request that falls back after it would count twice.
        if data is None or not app_within_rate_limit(app)[0]:
            return None
        response = self.accepted(app=app, data=data, caller_ip=caller_ip(meta))
        for header, value in self.default_response_headers.items():  # as DRF's cycle sets them
            response[header] = value
        return response

    def exception_reply(self, request, error: Exception, *args, **kwargs) -> HttpResponse:
        """DRF's reply to an error raised outside its cycle, as if raised inside it."""
        self.args, self.kwargs = args, kwargs
        self.request = self.initialize_request(request, *args, **kwargs)
        self.headers = self.default_response_headers
        return self.finalize_response(self.request, self.handle_exception(error), *args, **kwargs)

    @extend_schema(
        operation_id="send_event",
        request=EventSerializer,
        responses={
            202: OpenApiResponse(EventAcceptedSerializer, "Accepted: stored, postbacks scheduled."),
            200: OpenApiResponse(EventAcceptedSerializer, "Duplicate event_id: the first result, nothing new."),
            400: OpenApiResponse(
                FIELD_ERRORS,
                "Refused, nothing stored: an object of field names, each with its errors; a body that is not "
                'JSON: {"detail": ...}; an event the database refused: non_field_errors.',
            ),
            **REFUSALS,
        },
        parameters=REFUSAL_HEADERS,
        examples=[OpenApiExample("An install", EXAMPLE_EVENT, request_only=True)],
    )
    def post(self, request):
        app = request.auth
        event_names = app_profile(app).event_names
        data = event_validated_fast(request.data, event_names=event_names)
        if data is None:  # something to refuse, or unusual: the serializer decides and explains
            serializer = EventSerializer(data=request.data, context={"event_names": event_names})
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        return self.accepted(app=app, data=data, caller_ip=caller_ip(request.META))

    @staticmethod
    def accepted(*, app: App, data: dict, caller_ip: str | None) -> HttpResponse:
        result = event_ingest(app=app, data=event_input_from(data, caller_ip=caller_ip))
        if isinstance(result, ItemRefused):
            return json_reply(refused_errors(result), status=status.HTTP_400_BAD_REQUEST)
        return json_reply(
            accepted_body(result.event), status=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK
        )


def well_formed_events(data) -> list | None:
    """The items of a well-formed batch body, or None."""
    events = data.get("events") if isinstance(data, dict) else None
    return events if isinstance(events, list) and 1 <= len(events) <= MAX_BATCH else None


def batch_events(data) -> list:
    """The items of a batch body; BatchSerializer explains a malformed one. A well-formed
    body skips it: its JSONField child re-serialises every item to check it is JSON, which
    a parsed body always is."""
    events = well_formed_events(data)
    if events is not None:
        return events
    batch = BatchSerializer(data=data)
    batch.is_valid(raise_exception=True)
    return batch.validated_data["events"]


class EventBatchView(AppAPIView):
    body_limit = settings.API_MAX_BATCH_BYTES

    def rate_limit_events(self, request) -> int:
        """The rate limit counts a batch's items (a malformed body as one request)."""
        events = well_formed_events(request.data)
        return 1 if events is None else len(events)

    @extend_schema(
        operation_id="send_events",
        request=BatchSerializer,
        responses={
            200: OpenApiResponse(BatchResultSerializer, "One result per item, in order."),
            400: OpenApiResponse(
                FIELD_ERRORS,
                'Not a batch, nothing stored: {"events": [...errors]}, or {"detail": ...} for a body that is not JSON.',
            ),
            **REFUSALS,
        },
        parameters=REFUSAL_HEADERS,
        examples=[
            OpenApiExample(
                "An install and a session",
                {
                    "events": [
                        {**EXAMPLE_EVENT, "event_id": "evt-2"},
                        {**EXAMPLE_EVENT, "event_id": "evt-3", "event": "session_begin"},
                    ]
                },
                request_only=True,
            )
        ],
        description="Up to 1,000 events. One result per item, in order: accepted, duplicate, or rejected "
        "with the item's errors. Valid items are kept even when others are refused. The rate limit counts "
        "the batch's events: a batch that would pass it is refused whole (429).",
    )
    def post(self, request):
        app = request.auth
        events = batch_events(request.data)
        event_names = app_profile(app).event_names
        ip = caller_ip(request.META)
        results: list[dict] = []
        valid: list[tuple[int, EventInput]] = []
        # One serializer validates every item: building its fields once, not 1,000 times.
        validator = EventSerializer(context={"event_names": event_names})
        for index, item in enumerate(events):
            data = event_validated_fast(item, event_names=event_names)
            if data is None:
                try:
                    data = validator.run_validation(item)
                except ValidationError as error:
                    results.append({"index": index, "status": "rejected", "errors": item_errors(error)})
                    continue
            valid.append((index, event_input_from(data, caller_ip=ip)))
        outcomes = events_ingest(app=app, items=[data for _, data in valid]) if valid else []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, ItemRefused):
                results.append({"index": index, "status": "rejected", "errors": refused_errors(outcome)})
                continue
            status_name = "accepted" if outcome.created else "duplicate"
            results.append({"index": index, "status": status_name, **accepted_body(outcome.event)})
        results.sort(key=lambda result: result["index"])
        return json_reply({"results": results}, status=status.HTTP_200_OK)


MAX_CLICK_PARAMETERS = 30
MAX_CLICK_VALUE = 256


def click_view(request, tracker_id: str):
    """GET /t/<tracker id>: record the click (within the click rate limits), then send the user
    on to the store, recorded or not."""
    if request.method not in ("GET", "HEAD"):
        raise Http404
    tracker = get_object_or_404(Tracker.objects.select_related("app"), pk=tracker_id, app__is_active=True)
    ip = caller_ip(request.META)
    if not click_within_rate_limit(ip=ip, tracker_id=tracker.pk):
        # The person clicking still lands on the store; the flood is not written.
        return HttpResponseRedirect(tracker.destination_url)
    # Whatever cannot be stored (a NUL, say: ?sub1=%00) is left out, never a failed redirect.
    query = {
        key: value[:MAX_CLICK_VALUE]
        for key, value in list(request.GET.items())[:MAX_CLICK_PARAMETERS]
        if json_problem(key) is None and json_problem(value[:MAX_CLICK_VALUE]) is None
    }
    device_ids, _ = normalize_device_ids(query, strict=False)  # a bad id is ignored too
    user_agent = request.META.get("HTTP_USER_AGENT", "")[:512]
    click_id = query.pop("click_id", "")
    parameters = {key: value for key, value in query.items() if key not in DEVICE_ID_KINDS}
    click_record(
        tracker=tracker,
        clicked_at=clock.now(),
        device_ids=device_ids,
        click_id=click_id,
        ip=ip,
        user_agent="" if json_problem(user_agent) else user_agent,
        parameters=parameters,
    )
    return HttpResponseRedirect(tracker.destination_url)
