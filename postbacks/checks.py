"""Start-up checks (Django's system checks: every manage.py command runs them, run_workers and
dispatch_postbacks included) for settings whose combination the delivery rules cannot honour."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from postbacks.leases import batch_longest, lease_duration


@register()
def delivery_timing_check(app_configs, **kwargs) -> list[Error]:
    errors = []
    longest = batch_longest().total_seconds()
    if lease_duration().total_seconds() <= longest:
        errors.append(Error(f"The lease is not longer than a batch can take ({longest:g} s).", id="postbacks.E001"))
    if longest >= settings.WORKER_STALL_SECONDS:
        errors.append(
            Error(
                f"WORKER_STALL_SECONDS={settings.WORKER_STALL_SECONDS} is not longer than a batch can take "
                f"({longest:g} s with POSTBACK_TOTAL_TIMEOUT={settings.POSTBACK_TOTAL_TIMEOUT}): run_workers would "
                "restart a healthy cluster whose requests all wait out their deadline.",
                hint="Raise WORKER_STALL_SECONDS or lower POSTBACK_TOTAL_TIMEOUT.",
                id="postbacks.E002",
            )
        )
    return errors
