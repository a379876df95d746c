import pytest

from postbacks.roles import ACCOUNT_MANAGERS, SUPPORT
from tests import factories


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
