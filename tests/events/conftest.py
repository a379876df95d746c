import pytest
from django.conf import settings

from events import rate_limit


@pytest.fixture
def fresh_rate_limit():
    """Forget every rate-limit count, in Redis (when REDIS_URL is set) and in this process."""

    redis_url = settings.REDIS_URL  # as set up: a test may point it elsewhere

    def forget():
        rate_limit._local.clear()
        rate_limit._shared.clear()
        if redis_url:
            client = rate_limit._redis(redis_url)
            keys = list(client.scan_iter(f"{rate_limit.KEY_PREFIX}*"))
            if keys:
                client.delete(*keys)

    forget()
    yield
    forget()
