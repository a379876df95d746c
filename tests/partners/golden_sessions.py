"""golden.render for every event, SessionBegin included.

golden.render ingests a session_begin one hour after the install, inside the first 24 hours, when
no SessionBegin postback is sent at all (postbacks/services.py: one per 24-hour period from the
install, from the second period on), so its delivery has no request. Until golden.py moves it,
this renders the session 25 hours after the install, in the first period that sends one.
"""

from datetime import timedelta
from unittest import mock

from tests.partners import golden

SESSION_DELAY = timedelta(hours=24)  # on top of golden's hour: the session falls in period 1


def render(**arguments) -> golden.Sent:
    if arguments["event"] != "session_begin":
        return golden.render(**arguments)
    ingest = golden._ingest

    def later_session(app, event_id, name, at, *rest, **extra):
        return ingest(app, event_id, name, at + SESSION_DELAY if name == "session_begin" else at, *rest, **extra)

    with mock.patch.object(golden, "_ingest", later_session):
        return golden.render(**arguments)
