"""The forms' script in a real browser (issue 17 §5): the postback form shows the chosen kind's
part live, the macro filter narrows the list, and picking a partner brings its fields."""

import pytest
from django.urls import reverse

from partners.models import Partner
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signed_in(browser, live_server, client, manager, settings):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    client.force_login(manager)
    browser.get(live_server.url + "/admin/login/")
    browser.add_cookie(
        {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    return browser


def visible(browser, selector: str) -> bool:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector).is_displayed()


def test_the_postback_form_follows_the_kind_and_partner_chosen(signed_in, live_server, app, partner):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = signed_in
    analytics = factories.make_partner_configuration(
        app, factories.make_partner("insight", kind=Partner.Kind.ANALYTICS)
    )
    browser.get(live_server.url + reverse("admin:postbacks_postbackconfiguration_add") + f"?app={app.pk}")
    assert not visible(browser, "fieldset.postback-kind-certified")
    assert not visible(browser, "fieldset.postback-kind-custom")

    Select(browser.find_element(By.NAME, "kind")).select_by_value("custom")
    assert visible(browser, "fieldset.postback-kind-custom")
    assert not visible(browser, "fieldset.postback-kind-certified")
    assert visible(browser, ".field-supply_network_data")

    browser.find_element(By.CSS_SELECTOR, "input.macro-filter").send_keys("idfa")
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="macros"][value="idfa"]').is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, 'input[name="macros"][value="campaign_name"]').is_displayed()

    Select(browser.find_element(By.NAME, "kind")).select_by_value("certified")
    assert visible(browser, "fieldset.postback-kind-certified")
    Select(browser.find_element(By.NAME, "partner_configuration")).select_by_value(str(analytics.pk))
    assert not visible(browser, ".field-delivery_method")  # an analytics partner has none
    assert visible(browser, ".field-supply_network_data")

    # A saved custom postback switched to certified: the page comes back with the certified part.
    postback = factories.make_custom_postback(app)
    browser.get(live_server.url + reverse("admin:postbacks_postbackconfiguration_change", args=[postback.pk]))
    assert not browser.find_elements(By.NAME, "partner_configuration")
    Select(browser.find_element(By.NAME, "kind")).select_by_value("certified")
    assert browser.find_element(By.NAME, "partner_configuration").is_displayed()
    assert "kind=certified" in browser.current_url


def test_picking_a_partner_brings_its_fields_without_a_save(signed_in, live_server, app, partner):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = signed_in
    browser.get(live_server.url + reverse("admin:postbacks_partnerconfiguration_add") + f"?app={app.pk}")
    assert not browser.find_elements(By.NAME, "field__app_id")
    Select(browser.find_element(By.NAME, "partner")).select_by_value(str(partner.pk))
    field = browser.find_element(By.NAME, "field__app_id")  # waits for the reload
    assert field.get_attribute("placeholder") == "123456"
    assert Select(browser.find_element(By.NAME, "app")).first_selected_option.get_attribute("value") == str(app.pk)
    assert not browser.find_elements(By.CSS_SELECTOR, ".errorlist")
