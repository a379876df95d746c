"""Erasure on request (GDPR, CCPA; Adjust's "forget device", AppsFlyer's OpenDSR).

An app asks to erase the device its ids name; a worker erases, in one transaction, every row
of the app that holds the device's ids (docs/privacy.md):

- the devices owning any of the ids, with all their identifiers, events, deliveries and
  attempts (deleted with them, pending deliveries included: never sent);
- the events of other devices that carried one of those ids (an event whose ids two devices
  own is stored on the older one), with their deliveries: a delivery's request carries only
  its event's ids, so no delivery is kept and none needs scrubbing;
- the clicks carrying one of the ids, so no later install is attributed to them.

The cut-off: everything stored before the worker locks the devices (SELECT ... FOR UPDATE on
PostgreSQL) is erased. A concurrent write to one of them (an event, a new identifier, an
attribution) is checked against the device when it commits, so it waits for the erasure and
then fails and is retried by ingestion: as a new device, after the cut-off. What is stored
after the cut-off is new history.

Services here import both apps' models: erasure deletes deliveries, so it lives in postbacks.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections import Counter
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils.crypto import salted_hmac

from events.models import App, Click, Device, DeviceIdentifier, Event
from postbacks.models import Erasure
from project import clock

HASH_SALT = "postbacks.erasure.device_id"
# A queued erasure not processed by then (a lost task, a killed worker) is queued again.
# Longer than django-q2's task timeout (60 s), so a running one is never queued twice.
ERASURE_LEASE = timedelta(minutes=2)
# Rows erased, by the model's label in Django's deletion counts.
COUNTED = {
    "events.Device": "devices",
    "events.DeviceIdentifier": "identifiers",
    "events.Event": "events",
    "events.Click": "clicks",
    "postbacks.Delivery": "deliveries",
    "postbacks.Attempt": "attempts",
}


def device_id_hash(*, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised device id, keyed from SECRET_KEY: the same id always gives
    the same hash (support can check one they are given), which nobody can reverse without the key."""
    return salted_hmac(HASH_SALT, f"{kind}:{value}", algorithm="sha256").hexdigest()


def erasure_request(*, app: App, device_ids: dict[str, str]) -> Erasure:
    """Record a request to erase the device `device_ids` (normalised, as the events API
    normalises them) name; the dispatcher queues it for a worker (erasures_claim)."""
    return Erasure.objects.create(
        app=app,
        pending_ids=device_ids,
        id_hashes={kind: device_id_hash(kind=kind, value=value) for kind, value in device_ids.items()},
        requested_at=clock.now(),
    )


def erasure_get(*, app: App, erasure_id: str) -> Erasure | None:
    """The app's erasure with this id, or None (also for an id that is not a UUID)."""
    try:
        pk = uuid.UUID(erasure_id)
    except ValueError:
        return None
    return Erasure.objects.filter(app=app, pk=pk).first()


def _due(now) -> Q:
    return Q(status=Erasure.Status.PENDING) & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))


def erasures_claim(*, limit: int) -> list[uuid.UUID]:
    """Pending erasures to queue for the workers now: never queued, or queued and not
    processed within their lease. Each is taken by one dispatcher: the UPDATE checks again."""
    now = clock.now()
    candidates = Erasure.objects.filter(_due(now)).order_by("requested_at").values_list("pk", flat=True)[:limit]
    return [
        pk for pk in candidates if Erasure.objects.filter(_due(now), pk=pk).update(lease_expires_at=now + ERASURE_LEASE)
    ]


def _any_of(conditions: list[Q]) -> Q:
    return functools.reduce(operator.or_, conditions, Q(pk__in=[]))


def _columns_match(pairs: set[tuple[str, str]], prefix: str = "") -> Q:
    """Rows holding any of the (kind, value) pairs in the column (or JSON key) named by the kind."""
    return _any_of([Q(**{f"{prefix}{kind}": value}) for kind, value in sorted(pairs)])


def _identifiers_match(pairs: set[tuple[str, str]]) -> Q:
    return _any_of([Q(kind=kind, value=value) for kind, value in sorted(pairs)])


# Deleted with their events and deliveries, and part of them: not counted apart.
UNCOUNTED = {"events.EventKey", "postbacks.SessionPeriodClaim"}


def _add_counts(counts: Counter, deleted: tuple[int, dict[str, int]]) -> None:
    for label, count in deleted[1].items():
        if label not in UNCOUNTED:
            counts[COUNTED.get(label, label)] += count


@transaction.atomic
def erasure_process(*, erasure_id: uuid.UUID) -> Erasure | None:
    """Erase what a pending erasure names (the module's docstring says what), and record
    the counts; an erasure already completed (or unknown) is left as it is."""
    # The erasure's row only: locking its app's would hold up every write of the app meanwhile.
    erasure = Erasure.objects.select_for_update(of=("self",)).select_related("app").filter(pk=erasure_id).first()
    if erasure is None or erasure.status != Erasure.Status.PENDING:
        return erasure
    app = erasure.app
    requested = set(erasure.pending_ids.items())
    counts: Counter[str] = Counter({name: 0 for name in COUNTED.values()})
    owners = DeviceIdentifier.objects.filter(_identifiers_match(requested), app=app).values_list("device_id", flat=True)
    # Locked in order, so two erasures of the same devices never deadlock.
    devices = list(
        Device.objects.select_for_update().filter(pk__in=list(owners)).order_by("pk").values_list("pk", flat=True)
    )
    erasure.cutoff_at = clock.now()
    # Every id of the devices, not only those asked for: none of them may remain anywhere.
    pairs = requested | set(DeviceIdentifier.objects.filter(device_id__in=devices).values_list("kind", "value"))
    _add_counts(counts, Device.objects.filter(pk__in=devices).delete())
    if devices:
        # Every stored event's ids are owned by some device, so with no owner none remains. No
        # index leads to these (an index on device_ids would cost every insert): this reads
        # the app's events once, for the rare event two devices' ids met in.
        _add_counts(counts, Event.objects.filter(_columns_match(pairs, "device_ids__"), app=app).delete())
    _add_counts(counts, Click.objects.filter(_columns_match(pairs), app=app).delete())
    erasure.status = Erasure.Status.COMPLETED
    erasure.pending_ids = {}
    erasure.counts = dict(counts)
    erasure.completed_at = clock.now()
    erasure.lease_expires_at = None
    erasure.save()
    return erasure
