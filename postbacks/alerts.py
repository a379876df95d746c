"""Alerts and pauses (docs/alerts.md).

The send path hands every recorded attempt to `attempts_observe` (one call, after its
outcomes are saved). Per configuration it keeps the count of consecutive failed attempts and
per-minute counts of the last window (AlertState); when a rule trips it records an Alert and,
if the rules say so, pauses the configuration; when attempts succeed again it records a
recovery. Notifications (e-mail, a webhook) go out from a django-q2 task, never from the send
path, and a failing channel is logged and noted on the alert, nothing more.

A paused configuration's due deliveries are held: the claim leaves them alone
(selectors.due_filter) and they keep their due time, so Resume lets the dispatcher take them
oldest first; Discard ends them as skipped, saying so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse

from postbacks import http
from postbacks.models import Alert, AlertRules, AlertState, Attempt, Delivery, PostbackConfiguration
from postbacks.selectors import held_filter
from project import clock

logger = logging.getLogger("postbacks.alerts")

NOTIFY_TASK = "postbacks.tasks.alert_notify"


@dataclass(frozen=True)
class Rules:
    consecutive_failures: int
    failure_rate_percent: int
    window_minutes: int
    window_min_attempts: int
    pause_on_alert: bool
    email_to: tuple[str, ...]
    webhook_url: str

    @classmethod
    def from_settings(cls) -> Rules:
        return cls(
            consecutive_failures=settings.ALERT_CONSECUTIVE_FAILURES,
            failure_rate_percent=settings.ALERT_FAILURE_RATE_PERCENT,
            window_minutes=settings.ALERT_WINDOW_MINUTES,
            window_min_attempts=settings.ALERT_WINDOW_MIN_ATTEMPTS,
            pause_on_alert=settings.ALERT_PAUSE,
            email_to=tuple(settings.ALERT_EMAIL_TO),
            webhook_url=settings.ALERT_WEBHOOK_URL,
        )

    @classmethod
    def from_row(cls, row: AlertRules) -> Rules:
        return cls(
            consecutive_failures=row.consecutive_failures,
            failure_rate_percent=row.failure_rate_percent,
            window_minutes=row.window_minutes,
            window_min_attempts=row.window_min_attempts,
            pause_on_alert=row.pause_on_alert,
            email_to=tuple(address.strip() for address in row.email_to.split(",") if address.strip()),
            webhook_url=row.webhook_url or settings.ALERT_WEBHOOK_URL,
        )


def rules_for(*, configurations: Iterable[PostbackConfiguration]) -> dict[int, Rules]:
    """Each configuration's rules: its own, else its account's defaults, else the settings'."""
    configurations = list(configurations)
    accounts = {configuration.pk: configuration.app.account_id for configuration in configurations}
    rows = AlertRules.objects.filter(
        Q(configuration_id__in=accounts) | Q(configuration__isnull=True, account_id__in=set(accounts.values()))
    )
    own, defaults = {}, {}
    for row in rows:
        if row.configuration_id:
            own[row.configuration_id] = Rules.from_row(row)
        else:
            defaults[row.account_id] = Rules.from_row(row)
    fallback = Rules.from_settings()
    return {pk: own.get(pk) or defaults.get(account, fallback) for pk, account in accounts.items()}


# --- watching attempts ----------------------------------------------------------------------


def attempts_observe(*, attempts: list[Attempt]) -> None:
    """Update the alert state of the attempts' configurations (each attempt's delivery has its
    configuration loaded); raise or clear alerts. Never raises: alerting must not break sending."""
    if not attempts:
        return
    try:
        raised = _observe(attempts)
    except Exception:
        logger.exception("alert rules not evaluated for %d attempts", len(attempts))
        return
    for alert in raised:
        _notify_later(alert)


def _observe(attempts: list[Attempt]) -> list[Alert]:
    by_configuration: dict[int, list[Attempt]] = {}
    configurations: dict[int, PostbackConfiguration] = {}
    for attempt in sorted(attempts, key=lambda attempt: attempt.started_at):
        configuration = attempt.delivery.configuration
        configurations[configuration.pk] = configuration
        by_configuration.setdefault(configuration.pk, []).append(attempt)
    rules = rules_for(configurations=configurations.values())
    now = clock.now()
    raised = []
    with transaction.atomic():
        AlertState.objects.bulk_create(
            [AlertState(configuration_id=pk) for pk in by_configuration], ignore_conflicts=True
        )
        # Locked in one order, so two workers observing the same configurations wait, not deadlock.
        states = AlertState.objects.select_for_update().filter(pk__in=by_configuration).order_by("pk")
        for state in states:
            configuration = configurations[state.pk]
            alert = _state_update(state=state, attempts=by_configuration[state.pk], rules=rules[state.pk], now=now)
            state.save()
            if alert is not None:
                alert.configuration = configuration
                alert.save()
                raised.append(alert)
    return raised


def _state_update(*, state: AlertState, attempts: list[Attempt], rules: Rules, now) -> Alert | None:
    minute = int(now.timestamp() // 60)
    oldest = minute - rules.window_minutes + 1
    window = {bucket: [count, failed] for bucket, count, failed in state.window if bucket >= oldest}
    last_error = ""
    for attempt in attempts:
        failed = attempt.outcome != Attempt.Outcome.DELIVERED
        state.consecutive_failures = state.consecutive_failures + 1 if failed else 0
        bucket = window.setdefault(minute, [0, 0])
        bucket[0] += 1
        bucket[1] += int(failed)
        if failed:
            last_error = attempt.error
    state.window = [[bucket, count, failed] for bucket, (count, failed) in sorted(window.items())]
    reason = _reason(state=state, rules=rules, last_error=last_error)
    if reason and (not state.alerting or (rules.pause_on_alert and not state.paused)):
        # A new alert, or the same trouble again after a Resume with pausing on.
        state.alerting, state.alerted_at, state.alert_reason = True, now, reason[:300]
        pausing = rules.pause_on_alert and not state.paused
        if pausing:
            state.paused, state.paused_at, state.pause_reason = True, now, f"Alert: {reason}"[:300]
        return Alert(
            configuration_id=state.pk, kind=Alert.Kind.FAILING, reason=reason[:300], paused=pausing, created_at=now
        )
    if state.alerting and not reason and state.consecutive_failures == 0:
        state.alerting, state.recovered_at = False, now
        return Alert(
            configuration_id=state.pk,
            kind=Alert.Kind.RECOVERED,
            reason=f"Attempts succeed again (alerting since {state.alerted_at:%Y-%m-%d %H:%M} UTC).",
            created_at=now,
        )
    return None


def _reason(*, state: AlertState, rules: Rules, last_error: str) -> str:
    """Why the configuration's attempts are alarming, or ""."""
    error = f"; last error: {last_error[:150]}" if last_error else ""
    if rules.consecutive_failures and state.consecutive_failures >= rules.consecutive_failures:
        return f"{state.consecutive_failures} attempts in a row failed{error}"
    count = sum(bucket[1] for bucket in state.window)
    failed = sum(bucket[2] for bucket in state.window)
    if (
        rules.failure_rate_percent
        and count >= max(1, rules.window_min_attempts)
        and failed * 100 >= rules.failure_rate_percent * count
    ):
        return (
            f"{failed} of {count} attempts failed in the last {rules.window_minutes} minutes "
            f"({round(100 * failed / count)} %, threshold {rules.failure_rate_percent} %){error}"
        )
    return ""


# --- notifying -------------------------------------------------------------------------------


def _notify_later(alert: Alert) -> None:
    """Queue the alert's notification once the alert is committed, if it has anywhere to go."""
    rules = rules_for(configurations=[alert.configuration])[alert.configuration_id]
    if not (rules.email_to or rules.webhook_url):
        Alert.objects.filter(pk=alert.pk).update(notification="No channel configured.")
        return

    def queue() -> None:
        from django_q.tasks import async_task

        try:
            async_task(NOTIFY_TASK, alert.pk, save=False)
        except Exception:
            logger.exception("alert notification not queued", extra={"alert": alert.pk})

    transaction.on_commit(queue)


def alert_message(*, alert: Alert) -> dict:
    """The webhook's JSON: a Slack-compatible `text` and the same facts as fields."""
    configuration = alert.configuration
    app = configuration.app
    link = ""
    if settings.ALERT_ADMIN_BASE_URL:
        path = reverse("admin:postbacks_postbackconfiguration_change", args=[configuration.pk])
        link = settings.ALERT_ADMIN_BASE_URL + path
    if alert.kind == Alert.Kind.FAILING:
        headline = f"Postbacks failing: {configuration} ({app.name})"
    else:
        headline = f"Postbacks recovered: {configuration} ({app.name})"
    text = f"{headline}: {alert.reason}"
    if alert.paused:
        text += " The configuration is paused: new deliveries are held until someone resumes it."
    if link:
        text += f" {link}"
    return {
        "text": text,
        "kind": alert.kind,
        "reason": alert.reason,
        "paused": alert.paused,
        "at": alert.created_at.isoformat(),
        "configuration": {
            "id": configuration.pk,
            "name": str(configuration),
            "event": configuration.event,
            "partner": configuration.partner_label,
        },
        "app": {"id": app.pk, "name": app.name},
        "account": {"id": app.account_id, "name": app.account.name},
        "admin_url": link,
    }


def alert_notify(*, alert_id: int) -> str:
    """Send one alert by e-mail and to the webhook (the django-q2 task's body). Each channel's
    result is noted on the alert; a failing channel is logged and does not stop the other."""
    alert = Alert.objects.select_related("configuration__app__account").filter(pk=alert_id).first()
    if alert is None or alert.notified_at is not None:
        return ""
    rules = rules_for(configurations=[alert.configuration])[alert.configuration_id]
    message = alert_message(alert=alert)
    results = []
    if rules.email_to:
        try:
            send_mail(
                subject=message["text"].split(":")[0] + f": {alert.configuration}",
                message=message["text"],
                from_email=None,
                recipient_list=list(rules.email_to),
            )
            results.append(f"e-mail sent to {len(rules.email_to)}")
        except Exception as error:
            logger.warning("alert e-mail failed", extra={"alert": alert.pk, "error": str(error)})
            results.append(f"e-mail failed: {error}"[:200])
    if rules.webhook_url:
        exchange = http.send(
            method="POST",
            url=rules.webhook_url,
            headers={"Content-Type": "application/json"},
            body=json.dumps(message),
        )
        if exchange.status is not None and 200 <= exchange.status < 300:
            results.append(f"webhook answered HTTP {exchange.status}")
        else:
            problem = exchange.error or f"HTTP {exchange.status}"
            logger.warning("alert webhook failed", extra={"alert": alert.pk, "error": problem})
            results.append(f"webhook failed: {problem}"[:200])
    alert.notified_at = clock.now()
    alert.notification = "; ".join(results)[:500]
    alert.save(update_fields=["notified_at", "notification"])
    return alert.notification


# --- pausing and resuming --------------------------------------------------------------------


def configuration_pause(*, configuration: PostbackConfiguration, reason: str) -> bool:
    """Hold the configuration's deliveries from now on; False when it was paused already."""
    with transaction.atomic():
        state, _ = AlertState.objects.select_for_update().get_or_create(configuration=configuration)
        if state.paused:
            return False
        state.paused, state.paused_at, state.pause_reason = True, clock.now(), reason[:300]
        state.save(update_fields=["paused", "paused_at", "pause_reason"])
    return True


def configuration_resume(*, configuration: PostbackConfiguration) -> int:
    """End the pause: the held deliveries are due again and are claimed oldest first (they keep
    their due time). The failure counts start over, so the alert rules judge what follows.
    Returns how many deliveries were held."""
    with transaction.atomic():
        state = AlertState.objects.select_for_update().filter(configuration=configuration, paused=True).first()
        if state is None:
            return 0
        held = Delivery.objects.filter(held_filter(clock.now()), configuration=configuration).count()
        state.paused, state.paused_at, state.pause_reason = False, None, ""
        state.consecutive_failures, state.window = 0, []
        state.save()
    return held


def held_discard(*, configuration: PostbackConfiguration, by: str) -> int:
    """End the held deliveries of a paused configuration unsent (the partner asked not to get
    them): skipped, with a reason that says who discarded them and when."""
    now = clock.now()
    reason = f"Discarded while the configuration was paused, by {by} at {now:%Y-%m-%d %H:%M} UTC."
    return Delivery.objects.filter(held_filter(now), configuration=configuration).update(
        status=Delivery.Status.SKIPPED, skip_reason=reason, due_at=None, lease_expires_at=None, finished_at=now
    )
