"""At size (millions of events, clicks and deliveries): the admin's lists of what the product
writes read no whole table (no count of it, no DISTINCT over it for a filter's choices, no
case-insensitive search no index serves); the click lookup of ingestion uses the partial
indexes of the ids in the generic plan it runs by; the dispatcher's claim reads
the due deliveries only."""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events import queries
from events.admin_scoping import CappedPaginator
from events.models import Click, Event
from events.services import EventInput, click_record
from postbacks.ingest import events_ingest
from postbacks.models import Delivery
from postbacks.selectors import due_filter
from project import partitioning
from tests import factories

pytestmark = pytest.mark.django_db

BIG_TABLES = ("events_event", "events_device", "events_deviceidentifier", "events_click", "postbacks_delivery")
ADID = "38400000-8cf0-11bd-b23e-10b96e40000d"
INDEXED_IDS = "id|device_id|event_id|delivery_id|adid|android_id"
PAGE = 100  # the admin's list_per_page


@pytest.fixture
def stored(app, partner):
    factories.make_custom_postback(app, event="install")
    tracker = factories.make_tracker(app, partner)
    click_record(
        tracker=tracker,
        clicked_at=timezone.now() - timedelta(hours=1),
        device_ids={"adid": ADID},
        click_id="c1",
        ip=None,
        user_agent="",
        parameters={},
    )
    # More than a page of each (events, devices, deliveries, clicks): a list of one page is
    # read whole, as it may be; a longer one must be read a page at a time.
    Click.objects.bulk_create(
        Click(app=app, tracker=tracker, clicked_at=timezone.now(), android_id=f"{n:016x}") for n in range(PAGE)
    )
    items = [EventInput(event_id="e-1", name="install", device_ids={"adid": ADID}, occurred_at=timezone.now())]
    items += [
        EventInput(
            event_id=f"o-{n}", name="install", device_ids={"android_id": f"{n:016x}"}, occurred_at=timezone.now()
        )
        for n in range(PAGE)
    ]
    return events_ingest(app=app, items=items)[0].event


def statements_reading_whole_tables(client, url: str) -> list[str]:
    """The page's statements that read a big table with neither a LIMIT nor an equality on an
    indexed id (a count, a DISTINCT for a filter, an UPPER(...) search)."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    whole = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if not any(re.search(rf'FROM "{table}"', sql) for table in BIG_TABLES):
            continue
        if "UPPER(" in sql or (" LIMIT " not in sql and not re.search(rf'WHERE .*"({INDEXED_IDS})" (=|IN|>=)', sql)):
            whole.append(sql)
    return whole


def test_the_big_lists_count_no_whole_table_nor_read_one_for_filters_or_search(admin_client, stored, app, partner):
    delivery = Delivery.objects.get(event=stored)
    pages = [
        reverse("admin:postbacks_delivery_changelist"),
        reverse("admin:postbacks_delivery_changelist") + "?status__exact=scheduled",
        reverse("admin:postbacks_delivery_changelist") + f"?app__id__exact={app.pk}&event_name=install",
        reverse("admin:postbacks_delivery_changelist") + f"?q={delivery.delivery_id}",
        reverse("admin:postbacks_delivery_changelist") + "?q=e-1",
        reverse("admin:postbacks_delivery_changelist") + f"?q={ADID}",
        reverse("admin:postbacks_delivery_change", args=[delivery.pk]),
        reverse("admin:events_event_changelist"),
        reverse("admin:events_event_changelist") + "?q=e-1",
        reverse("admin:events_event_changelist") + f"?q={ADID}&event_name=install",
        reverse("admin:events_event_change", args=[stored.pk]),
        reverse("admin:events_device_changelist") + f"?q={ADID}&installs=1",
        reverse("admin:events_click_changelist") + f"?q={ADID}",
    ]
    for url in pages:
        assert statements_reading_whole_tables(admin_client, url) == [], url


def test_the_lists_find_by_exact_ids(admin_client, stored, app):
    def listed(url):
        return list(admin_client.get(url).context["cl"].result_list)

    delivery = Delivery.objects.get(event=stored)
    for term in (str(delivery.delivery_id), "e-1", ADID):
        assert listed(reverse("admin:postbacks_delivery_changelist") + f"?q={term}") == [delivery]
    assert listed(reverse("admin:events_event_changelist") + "?q=e-1") == [stored]
    assert listed(reverse("admin:events_event_changelist") + f"?q={ADID}") == [stored]
    assert listed(reverse("admin:events_event_changelist") + "?q=e-2") == []
    assert listed(reverse("admin:events_device_changelist") + f"?q={ADID}") == [stored.device]
    assert [click.adid for click in listed(reverse("admin:events_click_changelist") + f"?q={ADID}")] == [ADID]


def test_the_log_filtered_by_event_name_lists_that_events_deliveries(admin_client, stored, app):
    """Matched on the event and its day (postbacks/selectors.py deliveries_of_events)."""
    factories.make_custom_postback(app, event="purchase")
    item = EventInput(event_id="p-1", name="purchase", device_ids={"adid": ADID}, occurred_at=timezone.now())
    [bought] = events_ingest(app=app, items=[item])

    def listed(name):
        url = reverse("admin:postbacks_delivery_changelist") + f"?event_name={name}"
        return [delivery.event for delivery in admin_client.get(url).context["cl"].result_list]

    assert listed("purchase") == [bought.event]
    installs = listed("install")
    assert len(installs) == PAGE and {event.name for event in installs} == {"install"}
    assert listed("session_begin") == []
    # A delivery made before its event's name was stored on it (migration postbacks 0015).
    Delivery.objects.filter(event=bought.event).update(event_name=None)
    assert listed("purchase") == [bought.event]
    assert "p-1" not in {event.event_id for event in listed("install")}
    page = admin_client.get(reverse("admin:postbacks_delivery_changelist") + "?q=p-1").content.decode()
    assert '<td class="field-event_shown">purchase</td>' in page


def test_an_id_pasted_as_the_partner_writes_it_is_found_as_the_api_stored_it(admin_client, stored):
    """Exact matching, after the API's own normalisation: an IDFA or ad id in capitals (as
    iOS prints it) finds the device whose id the API stored lower-case."""

    def listed(url):
        return list(admin_client.get(url).context["cl"].result_list)

    pasted = quote(f" {ADID.upper()} ")
    assert listed(reverse("admin:events_device_changelist") + f"?q={pasted}") == [stored.device]
    assert listed(reverse("admin:events_event_changelist") + f"?q={pasted}") == [stored]
    assert listed(reverse("admin:postbacks_delivery_changelist") + f"?q={pasted}") == [
        Delivery.objects.get(event=stored)
    ]
    assert [click.adid for click in listed(reverse("admin:events_click_changelist") + f"?q={pasted}")] == [ADID]


def test_filters_offer_declared_event_names_and_visible_apps_without_reading_the_log(
    admin_client, stored, app, other_app
):
    page = admin_client.get(reverse("admin:postbacks_delivery_changelist")).content.decode()
    assert "?event_name=session_begin" in page  # declared by every app, though no such delivery exists
    page = admin_client.get(reverse("admin:events_event_changelist")).content.decode()
    assert f"?app__id__exact={other_app.pk}" in page  # an app without events is still a choice


def test_a_list_longer_than_the_count_cap_says_more_than(admin_client, app, partner):
    tracker = factories.make_tracker(app, partner)
    now = timezone.now()
    Click.objects.bulk_create(
        Click(app=app, tracker=tracker, clicked_at=now, adid=ADID) for _ in range(CappedPaginator.cap + 1)
    )
    response = admin_client.get(reverse("admin:events_click_changelist"))
    assert "more than 10,000 clicks" in response.content.decode()
    assert len(response.context["cl"].result_list) == 100


def test_the_click_lookup_uses_the_ids_partial_indexes_in_a_generic_plan(app, partner):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements' generic plans are PostgreSQL's")
    tracker = factories.make_tracker(app, partner)
    # Whole days before today's midnight, each in its own partition as on a database that has
    # run for a month: the plan does not depend on the time of day the test runs at (just
    # after midnight, today's partition holds a few clicks and is read by its clicked_at).
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        partitioning.partitions_ensure(
            cursor, table="events_click", first=(midnight - timedelta(days=30)).date(), last=midnight.date()
        )
        # Clicks as ad networks send them: most carry one id, the others empty.
        cursor.execute(
            "INSERT INTO events_click (clicked_at, click_id, adid, idfa, idfv, android_id, device_id, user_agent, "
            "parameters, app_id, tracker_id) SELECT %s - make_interval(mins => 1 + g %% 43200), '', "
            "CASE WHEN g %% 2 = 0 THEN md5(g::text)::uuid::text ELSE '' END, '', '', "
            "CASE WHEN g %% 10 = 1 THEN left(md5(g::text), 16) ELSE '' END, '', '', '{}', %s, %s "
            "FROM generate_series(1, 200000) g",
            [midnight, app.pk, tracker.pk],
        )
        cursor.execute("ANALYZE events_click")
    statements = []

    def keep(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        queries.clicks_matching(
            app_id=app.pk,
            values_by_kind={"adid": {ADID}, "android_id": {"9774d56d682e549c"}},
            earliest=midnight - timedelta(days=7),
            latest=midnight,
        )
    [(sql, params)] = [statement for statement in statements if "events_click" in statement[0]]
    numbered = iter(range(1, len(params) + 1))
    prepared = re.sub(r"%s", lambda _: f"${next(numbered)}", sql)
    prepared = re.sub(r"ANY\((\$\d+)\)", r"ANY(\1::text[])", prepared)  # psycopg sends lists typed
    with connection.cursor() as cursor:
        # As the lookup runs (rows_read_by_generic_plan): a plan made without the values.
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE click_lookup AS {prepared}")
        arguments = ", ".join("%s::text[]" if isinstance(value, list) else "%s" for value in params)
        # Values written into the statement: EXPLAIN takes no bound parameters.
        cursor.execute(connection.ops.compose_sql(f"EXPLAIN EXECUTE click_lookup({arguments})", params))
        plan = "\n".join(line for (line,) in cursor.fetchall())
        cursor.execute("DEALLOCATE click_lookup")
    assert "click_adid_idx" in plan and "click_android_id_idx" in plan, plan
    assert "click_device_id_idx" not in plan, plan
    assert Event.objects.count() == 0  # the lookup read only


def test_claiming_reads_the_due_deliveries_only_not_those_waiting_for_later(app):
    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    now = timezone.now()
    candidates = Delivery.objects.filter(due_filter(now)).order_by("due_at")[:100]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # an empty table would be read whole
        plan = candidates.explain()
    # Bounded by due_at in the index: 100,000 deliveries waiting for a later retry are not read.
    assert re.search(r"Index Cond: \(due_at <= ", plan), plan


def test_the_click_lookup_runs_by_its_generic_plan_not_planned_anew_for_each_install(app):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements' generic plans are PostgreSQL's")
    now = timezone.now()
    for _ in range(7):  # psycopg prepares it after five runs
        queries.clicks_matching(
            app_id=app.pk, values_by_kind={"adid": {ADID}}, earliest=now - timedelta(days=7), latest=now
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%FROM "events_click" c%'],
        )
        [(custom, generic)] = cursor.fetchall()
        cursor.execute("SHOW plan_cache_mode")
        [(mode,)] = cursor.fetchall()
    # A custom plan over a week of day partitions takes 1-2 ms to make, ten times its run.
    assert custom == 0 and generic >= 2
    assert mode == "auto"  # the other statements of the connection plan as usual
