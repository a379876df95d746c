import os

import pytest

from postbacks import http
from postbacks.roles import ACCOUNT_MANAGERS, SUPPORT
from tests import factories


@pytest.fixture(autouse=True)
def destinations_unknown(monkeypatch):
    """Each test starts knowing nothing of any destination's pace or slots. The receivers'
    ports are reused between tests, and a pace learnt from an earlier test's receiver on the
    same port would make a later one look fast or slow."""
    monkeypatch.setattr(http, "_limits", {})


@pytest.fixture
def account(db):
    return factories.make_account("Acme Games")


@pytest.fixture
def other_account(db):
    return factories.make_account("Rival Studio")


@pytest.fixture
def app(account):
    return factories.make_app(account)


@pytest.fixture
def other_app(other_account):
    return factories.make_app(other_account, name="Rival", package="com.rival.game")


@pytest.fixture
def partner(db):
    return factories.make_partner()


@pytest.fixture
def manager(account):
    return factories.make_staff("manager", group=ACCOUNT_MANAGERS, accounts=(account,))


@pytest.fixture
def support(account):
    return factories.make_staff("support", group=SUPPORT, accounts=(account,))


@pytest.fixture
def allow_private(settings):
    settings.POSTBACK_ALLOW_PRIVATE_DESTINATIONS = True


@pytest.fixture
def receiver():
    from tests.receiver import Receiver

    with Receiver() as running:
        yield running


@pytest.fixture
def redis_url():
    """The test Redis (REDIS_URL). Without one the test is skipped; under CI=true it fails."""
    url = os.environ.get("REDIS_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("REDIS_URL must be set under CI=true")
        pytest.skip("REDIS_URL is not set")
    return url
