"""What every app-key endpoint does with a request (its size, key, JSON body, rate limit),
the endpoints' one straight path (AppAPIView), and the click endpoint."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import APIException, MethodNotAllowed, ParseError, UnsupportedMediaType
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant
from rest_framework.views import APIView

from events.api_auth import AppKeyAuthentication, app_of_request
from events.models import DEVICE_ID_KINDS, App, Tracker
from events.rate_limit import click_within_rate_limit
from events.serializers import MAX_JSON_DEPTH, json_problem, normalize_device_ids
from events.services import click_record
from project import clock
from project.client_ip import caller_ip


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def body_within_limit(request, limit: int) -> None:
    """413 for a body over `limit` bytes, by its Content-Length (before anything reads it)."""
    length = _content_length(request)
    if length > limit:
        raise PayloadTooLarge(f"Request body of {length} bytes is over the limit of {limit} bytes.")


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def json_of_request(request):
    """The request body's JSON, read as DRF's JSONParser reads it: in the charset its
    Content-Type names (UTF-8 if none); an empty body is an empty object; 415 for a body
    that is not JSON by its media type, 400 for one that is not JSON text."""
    if not _content_length(request):
        return {}
    main_type, _, sub_type = request.content_type.partition("/")  # as DRF matches application/json
    if main_type not in ("application", "*") or sub_type not in ("json", "*"):
        raise UnsupportedMediaType(request.META.get("CONTENT_TYPE", ""))
    try:
        return json_from_body(request.body, request.encoding or settings.DEFAULT_CHARSET)
    except ValueError as error:
        raise ParseError(f"JSON parse error - {error}") from error


def json_reply(body: dict, *, status: int) -> HttpResponse:
    """A JSON reply as DRF's JSONRenderer writes it, without DRF's Response and its rendering."""
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


class JSONReplies(BaseContentNegotiation):
    """Apps get JSON whatever they accept: no Accept header parsed."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AppAPIView(APIView):
    """An endpoint for apps, with one straight path a request: post() (or get()) reads it step by step
    (size, key, JSON, validation, rate limit, work) and raises every refusal as a DRF
    exception, which DRF's exception handler words (project/api_errors.py). The request is
    Django's: DRF's Request wrapper, its authenticators, throttles and parsers (listed here
    for the schema) are not run."""

    content_negotiation_class = JSONReplies
    parser_classes = [JSONParser]
    authentication_classes = [AppKeyAuthentication]
    permission_classes = []
    throttle_classes = []
    body_limit = 0

    def dispatch(self, request, *args, **kwargs):
        self.args, self.kwargs, self.request, self.format_kwarg = args, kwargs, request, None
        self.headers = self.default_response_headers
        try:
            handler = getattr(self, request.method.lower(), None) if request.method in ("GET", "POST") else None
            response = handler(request, *args, **kwargs) if handler else self.not_allowed(request)
        except Exception as error:
            response = self.handle_exception(error)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def request_app(self, request) -> App:
        """The request's size, then its key."""
        body_within_limit(request, self.body_limit)
        return app_of_request(request)

    def not_allowed(self, request):
        """OPTIONS describes the endpoint and other methods are refused, for a known key."""
        self.request_app(request)
        if request.method == "OPTIONS":
            return self.options(request)
        raise MethodNotAllowed(request.method)

    def raise_uncaught_exception(self, exc):
        raise exc  # DRF's own reads its Request wrapper, which this view does without


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
