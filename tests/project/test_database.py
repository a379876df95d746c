"""The PostgreSQL connection as DATABASE_URL configures it."""

import pytest
from django.db import connection

from events.models import App


@pytest.mark.django_db
def test_a_statement_a_connection_repeats_is_prepared_once():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    for _ in range(6):  # psycopg prepares from the 5th use (prepare_threshold)
        list(App.objects.filter(pk=-1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('FROM "events_app"' in statement for statement in prepared), prepared
