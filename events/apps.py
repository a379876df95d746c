from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Apps and events"

    def ready(self) -> None:
        from events.app_cache import WATCHED_MODELS, forget_on_change

        for model in WATCHED_MODELS:
            post_save.connect(forget_on_change, sender=model, dispatch_uid=f"app_cache_{model.__name__}_save")
            post_delete.connect(forget_on_change, sender=model, dispatch_uid=f"app_cache_{model.__name__}_delete")
