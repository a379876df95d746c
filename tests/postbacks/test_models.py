import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from postbacks.models import PartnerConfiguration, PostbackConfiguration
from tests import factories

pytestmark = pytest.mark.django_db


def errors_of(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as error:
        instance.full_clean()
    return error.value.message_dict


def test_seed_defaults(app):
    postback = factories.make_custom_postback(app)
    assert postback.status == "active"
    assert postback.delay_seconds == 0
    assert postback.retry_attempts == 3
    assert postback.supply_network_data is False
    assert postback.match_event == ""


@pytest.mark.parametrize("attempts", [11, 100])
def test_retry_attempts_outside_0_to_10_refused(app, attempts):
    postback = PostbackConfiguration(
        app=app, event="install", kind="custom", destination_url="https://a.test/", retry_attempts=attempts
    )
    assert "Retry attempts must be between 0 (do not retry) and 10." in errors_of(postback)["retry_attempts"]


def test_database_refuses_more_than_10_retries_even_without_validation(app):
    postback = factories.make_custom_postback(app)
    postback.retry_attempts = 11
    with pytest.raises(IntegrityError), transaction.atomic():
        postback.save()


def test_delay_must_be_one_of_the_offered_choices(app):
    postback = PostbackConfiguration(
        app=app, event="install", kind="custom", destination_url="https://a.test/", delay_seconds=45
    )
    assert "Choose real time, 30 s, 1, 2, 5 or 10 minutes." in errors_of(postback)["delay_seconds"]


def test_unknown_macro_refused(app):
    postback = PostbackConfiguration(
        app=app, event="install", kind="custom", destination_url="https://a.test/", macros=["adid", "shoe_size"]
    )
    assert errors_of(postback)["macros"] == ["Unknown macro shoe_size; see docs/macros.md for the list."]


def test_unknown_placeholder_in_destination_refused(app):
    postback = PostbackConfiguration(app=app, event="install", kind="custom", destination_url="https://a.test/{nope}")
    assert "{nope} is not a known macro (see docs/macros.md)." in errors_of(postback)["destination_url"]


@pytest.mark.parametrize("url", ["ftp://files.test/in", "javascript:alert(1)", "hooks.test/in", ""])
def test_destination_must_be_http(app, url):
    postback = PostbackConfiguration(app=app, event="install", kind="custom", destination_url=url)
    assert "destination_url" in errors_of(postback)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/in",
        "http://localhost:8080/in",
        "http://api.localhost/in",
        "http://10.1.2.3/in",
        "http://192.168.0.10/in",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/in",
        "http://[::1]/in",
        "http://[fd00::1]/in",
        "http://[::ffff:10.0.0.1]/in",
        "http://2130706433/in",
        "http://0x7f000001/in",
        "http://0177.0.0.1/in",
        "http://127.1/in",
        "http://224.0.0.1/in",
        "http://0.0.0.0/in",
    ],
)
def test_private_and_loopback_destinations_refused_while_setting_is_off(app, url):
    postback = PostbackConfiguration(app=app, event="install", kind="custom", destination_url=url)
    message = " ".join(errors_of(postback)["destination_url"])
    assert "POSTBACK_ALLOW_PRIVATE_DESTINATIONS is off" in message


def test_private_destinations_allowed_by_the_setting(app, allow_private):
    factories.make_custom_postback(app, url="http://127.0.0.1:9000/in")


def test_credentials_in_destination_refused(app):
    postback = PostbackConfiguration(app=app, event="install", kind="custom", destination_url="https://u:p@a.test/")
    assert "Credentials in the URL" in errors_of(postback)["destination_url"][0]


def test_event_must_be_declared_and_matching_must_name_another_event(app):
    postback = PostbackConfiguration(app=app, event="checkout", kind="custom", destination_url="https://a.test/")
    assert "declare it as a custom event first" in errors_of(postback)["event"][0]
    postback = PostbackConfiguration(
        app=app, event="purchase", match_event="purchase", kind="custom", destination_url="https://a.test/"
    )
    assert "names the event itself" in errors_of(postback)["match_event"][0]
    postback.match_event = "refund"
    assert "is not an event of" in errors_of(postback)["match_event"][0]


def test_event_matching_changes_the_event_that_fires(app):
    postback = factories.make_custom_postback(app, event="purchase", match_event="level_complete")
    assert postback.fires_on == "level_complete"


def test_certified_postback_needs_a_partner_configuration_of_the_same_app(app, other_app, partner):
    postback = PostbackConfiguration(app=app, event="install", kind="certified")
    assert "needs a partner configuration" in errors_of(postback)["partner_configuration"][0]
    foreign = factories.make_partner_configuration(other_app, partner)
    postback.partner_configuration = foreign
    assert "belongs to another app" in errors_of(postback)["partner_configuration"][0]


def test_certified_postback_needs_a_template_for_its_event(app, partner):
    config = factories.make_partner_configuration(app, partner)
    postback = PostbackConfiguration(app=app, event="session_begin", kind="certified", partner_configuration=config)
    assert "has no certified template for session_begin" in errors_of(postback)["event"][0]
    factories.make_certified_postback(config, event="purchase", delivery_method="all")


def test_one_certified_postback_per_partner_and_event(app, partner):
    config = factories.make_partner_configuration(app, partner)
    factories.make_certified_postback(config)
    duplicate = PostbackConfiguration(app=app, event="install", kind="certified", partner_configuration=config)
    assert "__all__" in errors_of(duplicate)


def test_network_specific_fields_validated_against_the_partner(app, partner):
    missing = PartnerConfiguration(app=app, partner=partner, field_values={})
    assert errors_of(missing)["field_values"] == ["Acme App ID is required."]
    malformed = PartnerConfiguration(app=app, partner=partner, field_values={"app_id": "12ab"})
    # Said in words, with the example: never the regular expression.
    assert errors_of(malformed)["field_values"] == [
        "Acme App ID '12ab' is not in the expected format. 4 to 10 digits, from the Acme console. For example: 123456."
    ]
    unknown = PartnerConfiguration(app=app, partner=partner, field_values={"app_id": "1234", "pixel": "x"})
    assert "has no field pixel" in errors_of(unknown)["field_values"][0]
    factories.make_partner_configuration(app, partner, app_id="1234")


@pytest.mark.parametrize(
    ("url", "placeholder"),
    [
        ("http://{event_value}/x", "{event_value}"),
        ("https://{event_value}.hooks.acme.test/x", "{event_value}"),
        ("https://hooks.acme.test:{event_value}/x", "{event_value}"),
        ("https://{device_id}@hooks.acme.test/x", "{device_id}"),
        ("http{event_value}://hooks.acme.test/x", "{event_value}"),
        ("https://hooks.acme.test{event_value}/x", "{event_value}"),
    ],
)
def test_a_macro_may_not_choose_the_scheme_host_or_port_and_is_never_looked_up(app, monkeypatch, url, placeholder):
    looked_up = []
    monkeypatch.setattr("socket.getaddrinfo", lambda host, *args, **kwargs: looked_up.append(host) or [])
    postback = PostbackConfiguration(app=app, event="install", kind="custom", destination_url=url)
    [message] = [text for text in errors_of(postback)["destination_url"] if placeholder in text]
    assert "stands in the scheme, host or port" in message and "path and query only" in message
    assert looked_up == []


def test_a_macro_may_fill_the_path_and_the_query(app):
    factories.make_custom_postback(app, url="https://hooks.acme.test/in/{event_name}?value={event_value}#{adid}")


def test_a_signed_postback_is_a_post_whose_url_holds_no_macro(app):
    secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    get = PostbackConfiguration(
        app=app, event="install", kind="custom", destination_url="https://hooks.acme.test/in", signing_secret=secret
    )
    assert "a GET has none" in " ".join(errors_of(get)["signing_secret"])
    post = PostbackConfiguration(
        app=app,
        event="install",
        kind="custom",
        method="POST",
        destination_url="https://hooks.acme.test/in/{event_name}",
        signing_secret=secret,
    )
    assert "take {event_name} out of the URL" in " ".join(errors_of(post)["destination_url"])
    post.destination_url = "https://hooks.acme.test/in"
    post.full_clean()


def test_a_certified_postback_is_never_signed(app, partner):
    config = factories.make_partner_configuration(app, partner)
    postback = PostbackConfiguration(
        app=app,
        event="install",
        kind="certified",
        partner_configuration=config,
        signing_secret="whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )
    assert "Only custom postbacks are signed" in " ".join(errors_of(postback)["signing_secret"])
