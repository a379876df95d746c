"""The dispatcher: claims due deliveries every ~200 ms and hands them to django-q2 workers in
batches, and pending erasures one by one. Run exactly as many as you like (claims are
atomic); `make run` starts one."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django_q.brokers import get_broker
from django_q.tasks import async_task

from postbacks.erasure import erasures_claim
from postbacks.selectors import backlog
from postbacks.sending import deliveries_claim
from postbacks.stopping import StopRequest

logger = logging.getLogger("postbacks.dispatcher")

IDLE_SLEEP = 0.2
ERASURES_PER_ROUND = 10
RETRY_SLEEP = 1.0
BACKLOG_LOG_EVERY = 30.0


class Command(BaseCommand):
    help = "Claim due postback deliveries and queue them for the django-q2 workers, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Claim and queue one round, then exit.")

    def handle(self, *args, once=False, **options):
        stopping = StopRequest()
        broker = get_broker()
        # Keep the queue short: rows wait in the database (the truth), not in the broker, so a
        # lost queue only delays them until their lease runs out.
        max_queued = 2 * settings.Q_CLUSTER["workers"]
        last_report = 0.0
        while not stopping:
            try:
                claimed = self.dispatch_round(broker, max_queued)
                if time.monotonic() - last_report > BACKLOG_LOG_EVERY:
                    count, age = backlog()
                    logger.info("backlog", extra={"due": count, "oldest_due_seconds": round(age, 1)})
                    last_report = time.monotonic()
            except Exception:
                # The broker or the database is away (restarting, failing over): keep trying.
                # Rows claimed before the failure come back when their lease runs out.
                if once:
                    raise
                logger.warning("dispatch round failed; retrying in %.0f s", RETRY_SLEEP, exc_info=True)
                connection.close()
                claimed = 0
                time.sleep(RETRY_SLEEP)
                continue
            if once:
                break
            if not claimed:
                time.sleep(IDLE_SLEEP)

    def dispatch_round(self, broker, max_queued: int) -> int:
        # Erasures are rare and each is one task: queued whatever the deliveries' backlog.
        for erasure_id in erasures_claim(limit=ERASURES_PER_ROUND):
            async_task("postbacks.tasks.process_erasure", str(erasure_id), save=False, broker=broker)
        queued = broker.queue_size() or 0
        if queued >= max_queued:
            return 0
        batch_size = settings.POSTBACK_BATCH_SIZE
        claim = deliveries_claim(limit=batch_size * (max_queued - queued))
        for batch in claim.batches(batch_size):
            async_task("postbacks.tasks.send_deliveries", batch.ids, batch.lease.isoformat(), save=False, broker=broker)
        return len(claim.ids)
