from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class PostbacksConfig(AppConfig):
    name = "postbacks"
    verbose_name = "Postbacks"

    def ready(self) -> None:
        from postbacks import checks  # noqa: F401 - registers the start-up checks
        from postbacks.configuration_cache import WATCHED_MODELS, forget_all
        from postbacks.roles import ensure_role_groups
        from postbacks.schedules import schedules_on_migrate

        for model in WATCHED_MODELS:
            uid = f"configuration_cache_{model._meta.label}"
            post_save.connect(forget_all, sender=model, dispatch_uid=f"{uid}_save")
            post_delete.connect(forget_all, sender=model, dispatch_uid=f"{uid}_delete")

        # Permissions exist only after migrate, so the groups are (re)built here, every time.
        post_migrate.connect(ensure_role_groups, sender=self, dispatch_uid="postbacks_role_groups")
        post_migrate.connect(schedules_on_migrate, sender=self, dispatch_uid="postbacks_schedules")
