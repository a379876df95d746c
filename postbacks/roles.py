"""The two staff roles, as permission groups rebuilt after every migrate.

Account managers edit configuration; Support reads configuration and delivery logs and may
resend, but changes nothing. Account membership (events.Account.members) decides which
apps either role sees.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ACCOUNT_MANAGERS = "Account managers"
SUPPORT = "Support"

CONFIGURATION_MODELS = (
    "events.app",
    "events.customevent",
    "events.tracker",
    "postbacks.partnerconfiguration",
    "postbacks.postbackconfiguration",
)
READ_ONLY_MODELS = (
    "events.account",
    "partners.partner",
    "partners.partnerfield",
    "partners.partnertemplate",
    # written by the API, read by both roles
    "events.device",
    "events.deviceidentifier",
    "events.event",
    "events.click",
    "postbacks.delivery",
    "postbacks.attempt",
    "postbacks.erasure",
)
# Both roles may send a delivery again; neither may edit one.
EXTRA_PERMISSIONS = ("postbacks.resend_delivery",)


def role_permissions() -> dict[str, list[str]]:
    """Group name → permissions as "app_label.codename"."""
    manage = [
        f"{model.split('.')[0]}.{action}_{model.split('.')[1]}"
        for model in CONFIGURATION_MODELS
        for action in ("view", "add", "change", "delete")
    ]
    view_all = [
        f"{model.split('.')[0]}.view_{model.split('.')[1]}" for model in CONFIGURATION_MODELS + READ_ONLY_MODELS
    ]
    return {
        ACCOUNT_MANAGERS: sorted({*manage, *view_all, *EXTRA_PERMISSIONS}),
        SUPPORT: sorted({*view_all, *EXTRA_PERMISSIONS}),
    }


def ensure_role_groups(**kwargs) -> None:
    for group_name, names in role_permissions().items():
        group, _ = Group.objects.get_or_create(name=group_name)
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)
