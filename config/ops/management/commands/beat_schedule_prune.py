"""Disable django-celery-beat entries that the code's CELERY_BEAT_SCHEDULE no longer has."""

import json as jsonlib

from django.core.management.base import BaseCommand

from config.ops.beat import beat_schedule_prune


class Command(BaseCommand):
    help = (
        "Disable every enabled periodic task whose name is not in the code's beat schedule (beat also does "
        "this when it starts). Safe to run again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    def handle(self, *args, json: bool = False, **options) -> None:
        result = beat_schedule_prune(actor_label="command:beat_schedule_prune")
        if json:
            self.stdout.write(jsonlib.dumps({"disabled": result.disabled, "enabled": result.kept}))
        else:
            names = f": {', '.join(result.disabled)}" if result.disabled else ""
            self.stdout.write(f"Disabled {len(result.disabled)} stale beat entries{names}; {result.kept} enabled.")
