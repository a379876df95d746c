import json

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from project.urls import urlpatterns as product_urlpatterns


@csrf_exempt
def baseline_view(request):
    """The floor the events API is compared with: parse the same JSON body, one INSERT, reply."""
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_baseline (event_id, body) VALUES (%s, %s) RETURNING id",
            [body["event_id"], request.body.decode()],
        )
        row_id = cursor.fetchone()[0]
    return JsonResponse({"event_id": body["event_id"], "id": row_id}, status=202)


urlpatterns = [path("bench/baseline", baseline_view), *product_urlpatterns]
