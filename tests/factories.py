"""Small builders for test data; each returns saved, valid objects."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from events.models import Account, App, CustomEvent, Tracker
from events.services import app_issue_api_key
from partners.models import Partner, PartnerField, PartnerTemplate
from postbacks.models import PartnerConfiguration, PostbackConfiguration


def make_account(name: str = "Acme Games") -> Account:
    return Account.objects.create(name=name)


def make_app(account: Account, *, name: str = "Rocket", platform: str = "android", package: str = "") -> App:
    app = App(account=account, name=name, platform=platform, package_name=package or f"com.acme.{name.lower()}")
    app.full_clean(exclude=["api_key_hash"])
    app_issue_api_key(app=app)
    for event in ("purchase", "level_complete"):
        CustomEvent.objects.create(app=app, name=event)
    return app


def make_partner(slug: str = "acme_ads", *, kind: str = Partner.Kind.NETWORK) -> Partner:
    """A certified partner with one required field and templates for installs and post-install events."""
    partner = Partner.objects.create(slug=slug, name=slug.replace("_", " ").title(), kind=kind)
    PartnerField.objects.create(
        partner=partner,
        name="app_id",
        label="Acme App ID",
        pattern=r"^\d{4,10}$",
        help_text="4 to 10 digits, from the Acme console.",
        example="123456",
    )
    PartnerField.objects.create(partner=partner, name="token", label="Token", required=False, is_secret=True)
    PartnerTemplate.objects.create(
        partner=partner,
        event="install",
        method="GET",
        url_template="https://postback.acme.test/{fields.app_id}/install",
        body={"gaid": "{adid}", "evt": "{event_name}", "camp": "{campaign_name}", "t": "{fields.token}"},
        event_name_map={"install": "APP_INSTALL"},
    )
    PartnerTemplate.objects.create(
        partner=partner,
        event="*",
        method="POST",
        encoding="json",
        url_template="https://postback.acme.test/{fields.app_id}/events",
        body={"event": "{event_name}", "revenue": "{revenue}", "click": "{click_id}"},
        event_name_map={"purchase": "PURCHASE"},
    )
    return partner


def make_partner_configuration(app: App, partner: Partner, **fields: str) -> PartnerConfiguration:
    config = PartnerConfiguration(app=app, partner=partner, field_values=fields or {"app_id": "12345"})
    config.full_clean()
    config.save()
    return config


def make_certified_postback(config: PartnerConfiguration, *, event: str = "install", **extra) -> PostbackConfiguration:
    postback = PostbackConfiguration(
        app=config.app, event=event, kind="certified", partner_configuration=config, **extra
    )
    postback.full_clean()
    postback.save()
    return postback


def make_custom_postback(app: App, *, event: str = "install", url: str = "https://hooks.acme.test/in", **extra):
    postback = PostbackConfiguration(app=app, event=event, kind="custom", destination_url=url, **extra)
    postback.full_clean()
    postback.save()
    return postback


def make_tracker(app: App, network: Partner, **extra) -> Tracker:
    tracker = Tracker(app=app, network=network, destination_url="https://play.google.com/store/apps", **extra)
    tracker.full_clean()
    tracker.save()
    return tracker


def make_staff(username: str, *, group: str | None = None, accounts: tuple[Account, ...] = ()) -> object:
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    for account in accounts:
        account.members.add(user)
    return user
