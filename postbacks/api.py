"""The events API for client apps: one straight path per endpoint, from the request to the
stored events and deliveries (postbacks/ingest.py)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from events.api import AppAPIView, json_of_request, json_reply
from events.api_auth import app_rate_limit
from events.app_cache import app_profile
from events.models import Event
from events.serializers import (
    MAX_BATCH,
    BatchResultSerializer,
    BatchSerializer,
    ErrorSerializer,
    EventAcceptedSerializer,
    EventSerializer,
    event_input_from,
    event_validate,
)
from postbacks.ingest import ItemRefused, events_ingest
from project.client_ip import caller_ip

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


def accepted_body(event: Event) -> dict:
    return {"event_id": event.event_id, "id": event.pk, "postbacks_scheduled": event.postbacks_scheduled}


def refused_errors(refused: ItemRefused) -> dict:
    return {api_settings.NON_FIELD_ERRORS_KEY: [refused.error]}


class EventView(AppAPIView):
    body_limit = settings.API_MAX_EVENT_BYTES

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
        app = self.request_app(request)
        item = json_of_request(request)
        data, errors = event_validate(item, event_names=app_profile(app).event_names)
        app_rate_limit(app)  # what is refused counts too
        if errors is not None:
            if item is None:  # DRF's wording for a body that is null
                errors = {api_settings.NON_FIELD_ERRORS_KEY: ["No data provided"]}
            raise ValidationError(errors)
        event = event_input_from(data, caller_ip=caller_ip(request.META))
        [outcome] = events_ingest(app=app, items=[event])
        if isinstance(outcome, ItemRefused):
            raise ValidationError(refused_errors(outcome))
        return json_reply(
            accepted_body(outcome.event), status=status.HTTP_202_ACCEPTED if outcome.created else status.HTTP_200_OK
        )


class EventBatchView(AppAPIView):
    body_limit = settings.API_MAX_BATCH_BYTES

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
        app = self.request_app(request)
        body = json_of_request(request)
        events = body.get("events") if isinstance(body, dict) else None
        well_formed = isinstance(events, list) and 1 <= len(events) <= MAX_BATCH
        # The rate limit counts a batch's items, a malformed body as one request.
        app_rate_limit(app, events=len(events) if well_formed else 1)
        if not well_formed:  # BatchSerializer explains what is wrong with it
            BatchSerializer(data=body).is_valid(raise_exception=True)
        event_names = app_profile(app).event_names
        ip = caller_ip(request.META)
        results: list[dict] = []
        valid: list[tuple[int, dict]] = []
        for index, item in enumerate(events):
            data, errors = event_validate(item, event_names=event_names)
            if errors is not None:
                results.append({"index": index, "status": "rejected", "errors": errors})
            else:
                valid.append((index, data))
        items = [event_input_from(data, caller_ip=ip) for _, data in valid]
        outcomes = events_ingest(app=app, items=items)
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, ItemRefused):
                results.append({"index": index, "status": "rejected", "errors": refused_errors(outcome)})
            else:
                status_name = "accepted" if outcome.created else "duplicate"
                results.append({"index": index, "status": status_name, **accepted_body(outcome.event)})
        results.sort(key=lambda result: result["index"])
        return json_reply({"results": results}, status=status.HTTP_200_OK)
