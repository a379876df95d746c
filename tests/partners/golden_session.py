"""Two additions to golden.render, for the partner golden tests (to fold into golden.py, which the
partner helpers may not edit):

- `render_event`: golden.render ingests the session one hour after the install, inside the first
  24 hours in which SessionBegin postbacks are skipped (postbacks.services), so its session_begin
  delivery is always "skipped", with no request. For session_begin this ingests a second session on
  the next day (same device, same tracking) and reads that delivery; other events are golden.render's.
- `render_again`: the same event once more on the next day with other tracking values (e.g. ATT
  denied while limit_ad_tracking is false, a combination golden.render does not make).
"""

from __future__ import annotations

from datetime import timedelta

from postbacks.models import Delivery
from tests.partners import golden


def render_event(*, event: str, platform: str, tracking_allowed: bool = True, **kwargs) -> golden.Sent:
    sent = golden.render(event=event, platform=platform, tracking_allowed=tracking_allowed, **kwargs)
    if event != "session_begin":
        return sent
    assert Delivery.objects.latest("id").status == "skipped"
    return render_again(
        event=event,
        platform=platform,
        att_status=("authorized" if tracking_allowed else "denied") if platform == "ios" else None,
        limit_ad_tracking=not tracking_allowed,
        consent=tracking_allowed,
    )


def render_again(*, event: str, platform: str, att_status: str | None, limit_ad_tracking: bool, consent: bool):
    """The latest rendered configuration's event once more, 25 hours after the install."""
    previous = Delivery.objects.select_related("event__app", "configuration").latest("id")
    ids = {"adid": golden.ADID} if platform == "android" else {"idfa": golden.IDFA, "idfv": golden.IDFV}
    tracking = {
        "att_status": att_status,
        "limit_ad_tracking": limit_ad_tracking,
        "consent_ad_user_data": consent,
        "consent_ad_personalization": consent,
    }
    at = golden.T0 + timedelta(hours=25)
    stored = golden._ingest(previous.event.app, f"evt-{event}-again", event, at, ids, platform, tracking)
    return golden._read(Delivery.objects.get(event=stored, configuration=previous.configuration))
