"""The shipped catalogue of certified partners (partners/catalogue.json).

Loaded after migrate into a new database (partners.apps) and by `manage.py sync_partner_catalogue`
after an upgrade: each partner in the file is made to match it, partners not in the file
are left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.apps import apps as django_apps
from django.db import transaction

from partners.templating import template_spec_problems

CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")


def catalogue_read(*, path: Path = CATALOGUE_FILE) -> list[dict]:
    return json.loads(path.read_text())["partners"]


class CatalogueError(ValueError):
    """The catalogue file holds a template the language refuses; nothing was written."""


def catalogue_problems(*, entries: list[dict]) -> list[str]:
    """Every problem of the catalogue's templates, each named by partner, event and path."""
    from partners.models import Partner, PartnerField

    problems = []
    for entry in entries:
        documentation = entry.get("documentation", Partner.Documentation.DOCUMENTED)
        if documentation not in Partner.Documentation.values:
            problems.append(
                f"{entry.get('slug')} · documentation: {documentation!r} is not one of {Partner.Documentation.values}"
            )
        elif documentation != Partner.Documentation.DOCUMENTED and not (
            entry.get("illustrative_note") and entry.get("sources")
        ):
            problems.append(f"{entry.get('slug')} · a {documentation} partner needs an illustrative_note and sources")
        field_names = {field["name"] for field in entry.get("fields", [])}
        for field in entry.get("fields", []):
            # The example is what the admin shows as the expected format: it must pass it.
            example = field.get("example", "")
            checked = PartnerField(
                name=field["name"], label=field.get("label", field["name"]), pattern=field.get("pattern", "")
            )
            if example and checked.value_problem(example):
                slug = entry.get("slug")
                problems.append(f"{slug} · fields.{field['name']}: the example {example!r} fails its pattern")
        for template in entry.get("templates", []):
            errors = template_spec_problems(
                url_template=template.get("url_template", ""),
                encoding=template.get("encoding", "query"),
                query=template.get("query", {}),
                body=template.get("body", {}),
                headers=template.get("headers", {}),
                reply=template.get("reply", {}),
                field_names=field_names,
            )
            for messages in errors.values():
                problems.extend(f"{entry.get('slug')} · {template.get('event')}: {message}" for message in messages)
    return problems


@transaction.atomic
def catalogue_sync(*, entries: list[dict] | None = None, apps_registry=django_apps) -> dict[str, int]:
    """Create or update the catalogue's partners. `apps_registry` lets a migration pass its historical models."""
    partner_model = apps_registry.get_model("partners", "Partner")
    field_model = apps_registry.get_model("partners", "PartnerField")
    template_model = apps_registry.get_model("partners", "PartnerTemplate")
    entries = catalogue_read() if entries is None else entries
    problems = catalogue_problems(entries=entries)
    if problems:
        raise CatalogueError("The partner catalogue is not valid:\n" + "\n".join(problems))
    counts = {"partners": 0, "fields": 0, "templates": 0}
    for entry in entries:
        partner, _ = partner_model.objects.update_or_create(
            slug=entry["slug"],
            defaults={
                "name": entry["name"],
                "kind": entry["kind"],
                "website": entry.get("website", ""),
                "description": entry.get("description", ""),
                "documentation": entry.get("documentation", "documented"),
                "illustrative_note": entry.get("illustrative_note", ""),
            },
        )
        counts["partners"] += 1
        field_names = []
        for position, field in enumerate(entry.get("fields", [])):
            field_model.objects.update_or_create(
                partner=partner,
                name=field["name"],
                defaults={
                    "label": field["label"],
                    "required": field.get("required", True),
                    "pattern": field.get("pattern", ""),
                    "help_text": field.get("help_text", ""),
                    "example": field.get("example", ""),
                    "is_secret": field.get("is_secret", False),
                    "position": position,
                },
            )
            field_names.append(field["name"])
            counts["fields"] += 1
        field_model.objects.filter(partner=partner).exclude(name__in=field_names).delete()
        events = []
        for template in entry.get("templates", []):
            template_model.objects.update_or_create(
                partner=partner,
                event=template["event"],
                defaults={
                    "method": template.get("method", "GET"),
                    "url_template": template["url_template"],
                    "encoding": template.get("encoding", "query"),
                    "query": template.get("query", {}),
                    "body": template.get("body", {}),
                    "headers": template.get("headers", {}),
                    "reply": template.get("reply", {}),
                    "source": template.get("source", ""),
                    "event_name_map": template.get("event_name_map", {}),
                },
            )
            events.append(template["event"])
            counts["templates"] += 1
        template_model.objects.filter(partner=partner).exclude(event__in=events).delete()
    return counts
