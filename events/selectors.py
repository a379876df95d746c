"""Reads of the events app for people: what a support search finds (the API's reads for
ingestion are events/queries.py)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from events.models import DEVICE_ID_KINDS, DeviceIdentifier
from events.serializers import normalize_device_ids

SEARCH_MATCHES = 1000  # a search term is an id: more matches than this are not a support case


def stored_forms(term: str) -> set[tuple[str, str]]:
    """The (kind, value) pairs a device id `term` may be stored as: as typed, and as the API
    normalises each kind (an IDFA pasted in capitals is stored lower-case)."""
    normalised = normalize_device_ids(dict.fromkeys(DEVICE_ID_KINDS, term), strict=False)[0]
    return {(kind, term) for kind in DEVICE_ID_KINDS} | set(normalised.items())


def _any_kind(pairs: set[tuple[str, str]]) -> Q:
    found = Q(pk__in=[])
    for kind, value in sorted(pairs):
        found |= Q(kind=kind, value=value)
    return found


def devices_identified_by(*, apps: QuerySet, term: str) -> list[int]:
    """The ids of the devices of `apps` known by the identifier `term` (any kind), through
    the (app, kind, value) index."""
    identifiers = DeviceIdentifier.objects.filter(_any_kind(stored_forms(term)), app__in=apps)
    return list(identifiers.values_list("device_id", flat=True)[:SEARCH_MATCHES])


def events_matching(*, events: QuerySet, apps: QuerySet, term: str) -> QuerySet:
    """The events a support search finds: by event id, or by an identifier of their device;
    exactly, as ids are stored, so that each part is an index condition (a case-insensitive
    comparison is served by no index and read every event)."""
    term = term.strip()
    if not term:
        return events
    devices = devices_identified_by(apps=apps, term=term)
    return events.filter(Q(app__in=list(apps.values_list("pk", flat=True)), event_id=term) | Q(device_id__in=devices))


def devices_matching(*, devices: QuerySet, apps: QuerySet, term: str) -> QuerySet:
    """The devices a support search finds: by an identifier, or by their number."""
    term = term.strip()
    if not term:
        return devices
    found = Q(pk__in=devices_identified_by(apps=apps, term=term))
    if term.isdigit():
        found |= Q(pk=int(term))
    return devices.filter(found)


def clicks_matching_term(*, clicks: QuerySet, apps: QuerySet, term: str) -> QuerySet:
    """The clicks a support search finds: by a device identifier of any kind, through each
    kind's partial index (stating the id is not empty, as that index does)."""
    term = term.strip()
    if not term:
        return clicks
    app_ids = list(apps.values_list("pk", flat=True))
    found = Q(pk__in=[])
    for kind, value in sorted(stored_forms(term)):
        found |= Q(app__in=app_ids, **{kind: value}) & ~Q(**{kind: ""})
    return clicks.filter(found)
