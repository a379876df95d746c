"""The erasure API (thin: validate, call postbacks/erasure.py, reply): an app asks to erase a
device, a worker does it, the app reads how it went."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError

from events.api import AppAPIView, json_of_request, json_reply
from events.api_auth import app_rate_limit
from events.serializers import DeviceField, ErrorSerializer
from postbacks.api import FIELD_ERRORS, REFUSAL_HEADERS, REFUSALS
from postbacks.erasure import erasure_get, erasure_request
from postbacks.models import Erasure


class ErasureRequestSerializer(serializers.Serializer):
    device = DeviceField(
        help_text="The device to erase: at least one of adid, idfa, idfv, android_id, device_id, "
        "as the events API takes them. Every device of the app owning any of them is erased."
    )


class ErasureAcceptedSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The erasure's id: GET /api/v1/erasures/{id} says how it went.")
    status = serializers.ChoiceField(choices=[Erasure.Status.PENDING])


class ErasureCountsSerializer(serializers.Serializer):
    devices = serializers.IntegerField()
    identifiers = serializers.IntegerField()
    events = serializers.IntegerField()
    clicks = serializers.IntegerField()
    deliveries = serializers.IntegerField()
    attempts = serializers.IntegerField()


class ErasureSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Erasure.Status.values)
    requested_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    counts = ErasureCountsSerializer(allow_null=True, help_text="Rows erased, by kind; null while pending.")


def refusals(*codes: int) -> dict:
    return {code: REFUSALS[code] for code in codes}


class ErasureView(AppAPIView):
    body_limit = settings.API_MAX_EVENT_BYTES

    @extend_schema(
        operation_id="request_erasure",
        request=ErasureRequestSerializer,
        responses={
            202: OpenApiResponse(ErasureAcceptedSerializer, "Accepted: a worker erases the device shortly."),
            400: OpenApiResponse(
                FIELD_ERRORS,
                "Refused, nothing recorded: an object of field names, each with its errors; a body that is not "
                'JSON: {"detail": ...}.',
            ),
            413: OpenApiResponse(ErrorSerializer, "Body over 64 KB."),
            **refusals(401, 415, 429, 503),
        },
        parameters=REFUSAL_HEADERS,
        examples=[
            OpenApiExample(
                "Erase a device", {"device": {"adid": "38400000-8cf0-11bd-b23e-10b96e40000d"}}, request_only=True
            )
        ],
        description="Erase a device (GDPR, CCPA): the device owning any of the ids, its identifiers, events, "
        "clicks and postback deliveries. Processed by the workers; GET /api/v1/erasures/{id} says when it is "
        "done. Rate-limited per key (ERASURE_RATE_LIMIT_PER_MINUTE).",
    )
    def post(self, request):
        app = self.request_app(request)
        serializer = ErasureRequestSerializer(data=json_of_request(request))
        valid = serializer.is_valid()
        # Counted apart from the key's events: each is a worker's task, and an app's events must
        # not use up its erasures. What is refused counts too.
        app_rate_limit(app, scope="erasure", limit=settings.ERASURE_RATE_LIMIT_PER_MINUTE)
        if not valid:
            raise ValidationError(serializer.errors)
        erasure = erasure_request(app=app, device_ids=serializer.validated_data["device"])
        return json_reply({"id": str(erasure.pk), "status": erasure.status}, status=status.HTTP_202_ACCEPTED)


class ErasureDetailView(AppAPIView):
    @extend_schema(
        operation_id="get_erasure",
        parameters=[
            OpenApiParameter("erasure_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The erasure's id."),
            *REFUSAL_HEADERS,
        ],
        responses={
            200: OpenApiResponse(ErasureSerializer, "The erasure: pending, or completed with what it erased."),
            404: OpenApiResponse(ErrorSerializer, "No erasure of this app has this id."),
            **refusals(401, 429, 503),
        },
    )
    def get(self, request, erasure_id: str):
        app = self.request_app(request)
        app_rate_limit(app)  # reads count against the key's events limit
        erasure = erasure_get(app=app, erasure_id=erasure_id)
        if erasure is None:
            raise NotFound()
        return json_reply(ErasureSerializer(erasure).data, status=status.HTTP_200_OK)
