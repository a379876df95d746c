from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PostbacksConfig(AppConfig):
    name = "postbacks"
    verbose_name = "Postbacks"

    def ready(self) -> None:
        from postbacks.roles import ensure_role_groups

        # Permissions exist only after migrate, so the groups are (re)built here, every time.
        post_migrate.connect(ensure_role_groups, sender=self, dispatch_uid="postbacks_role_groups")
