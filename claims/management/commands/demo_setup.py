"""Prepare the demo: example workflows, its users, and a few claims with running instances.

Users (passwords equal usernames):

- ``demo``: a superuser, may do everything;
- ``alice`` and ``bob``: claimants, each owning some of the claims; each sees and acts on their
  own claims only (submit, withdraw: ``claims.submit_claim``);
- ``rita``: a reviewer (group ``reviewers``): sees every claim and alone may approve, reject,
  hold or triage (``claims.decide_claim``).

The rules live in :mod:`claims.rules` (django-rules) and :mod:`claims.visibility`.

Idempotent: running it again changes nothing that is already there. A shipped workflow whose
definition file changed is updated in place (``import_workflow(..., replace=True)``); a claim
that already has an instance of its workflow is left as it is, whatever happened to it since.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

import django_steps
from claims.models import Claim
from claims.rules import REVIEWERS
from django_steps import services
from django_steps.definitions import (
    export_workflow,
    import_workflow,
    load_document,
    normalize_document,
)
from django_steps.exceptions import WorkflowError
from django_steps.models import Workflow, WorkflowInstance

EXAMPLES = Path(django_steps.__file__).resolve().parent / "examples"
WORKFLOW_FILES = ("claim_processing.yaml", "claim_triage.yaml")

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"

#: What claimants and reviewers may do everywhere: read definitions and instances, change
#: instances. Which instances they see, and which statuses they may set, is decided per claim by
#: the rules (claims/rules.py, claims/visibility.py).
ROLE_PERMISSIONS = (
    "django_steps.view_workflow",
    "django_steps.view_workflowinstance",
    "django_steps.change_workflowinstance",
)

#: username -> (is a reviewer, the titles of the claims the user owns).
ROLES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "alice": (
        False,
        ("Broken window", "Hail damage on car", "Water damage in kitchen", "Cracked phone screen"),
    ),
    "bob": (
        False,
        ("Burst pipe in basement", "Lost luggage", "Stolen bicycle", "Roof leak after storm"),
    ),
    "rita": (True, ()),
}

#: (title, claimant, amount, priority, workflow, what to do after starting it).
#: Actions: a status name (``update_workflow_step_status``), ``"@hold"`` or ``"@cancel"``.
EXAMPLE_CLAIMS: tuple[tuple[str, str, str, int, str, tuple[str, ...]], ...] = (
    ("Broken window", "Ada Lovelace", "450.00", Claim.Priority.NORMAL, "Claim Processing", ()),
    (
        "Hail damage on car",
        "Ben Okafor",
        "1800.00",
        Claim.Priority.HIGH,
        "Claim Processing",
        ("Submitted",),
    ),
    (
        "Burst pipe in basement",
        "Chloe Martin",
        "3200.00",
        Claim.Priority.HIGH,
        "Claim Processing",
        ("Submitted", "Approved"),
    ),
    ("Lost luggage", "Dev Patel", "300.00", Claim.Priority.LOW, "Claim Processing", ("@hold",)),
    # Claim Triage routes by amount: "Triaged" sends claims over 1000 to Senior Review (CEL).
    (
        "Water damage in kitchen",
        "Eva Novak",
        "2400.00",
        Claim.Priority.HIGH,
        "Claim Triage",
        ("Triaged",),
    ),
    (
        "Stolen bicycle",
        "Farid Haddad",
        "800.00",
        Claim.Priority.NORMAL,
        "Claim Triage",
        ("Triaged",),
    ),
    (
        "Cracked phone screen",
        "Grace Kim",
        "150.00",
        Claim.Priority.LOW,
        "Claim Triage",
        ("Waiting for Documents",),
    ),
    ("Roof leak after storm", "Hiro Tanaka", "5600.00", Claim.Priority.HIGH, "Claim Triage", ()),
)


def _canonical(document: dict) -> str:
    """A definition document as comparable text: defaults filled in, order-insensitive where
    order carries no meaning (statuses by name; transitions keep priority in the tuple)."""
    doc, _problems = normalize_document(document)
    steps = sorted(
        (
            {
                **{k: v for k, v in step.items() if k not in ("_path", "statuses")},
                "statuses": sorted(
                    ({k: v for k, v in s.items() if k != "_path"} for s in step["statuses"]),
                    key=lambda s: s["name"],
                ),
            }
            for step in doc["steps"]
        ),
        key=lambda s: s["name"],
    )
    transitions = sorted(
        ({k: v for k, v in t.items() if k != "_path"} for t in doc["transitions"]),
        key=lambda t: (t["from_step"], t["to_step"], t["priority"], t["condition"]),
    )
    return json.dumps(
        {
            "name": doc["name"],
            "description": doc["description"],
            "steps": steps,
            "transitions": transitions,
        },
        sort_keys=True,
    )


class Command(BaseCommand):
    help = (
        "Load the example workflows, create the demo users (demo, alice, bob, rita) "
        "and a few example claims."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-claims", action="store_true", help="Skip the example claims.")
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="Where the demo will be served (for the printed links).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for filename in WORKFLOW_FILES:
            self._load_workflow(EXAMPLES / filename)
        self._demo_user()
        self._role_users()
        url = options["url"].rstrip("/")
        if not options["no_claims"]:
            self._example_claims()
            self._owners()
        self.stdout.write(
            self.style.SUCCESS(
                "\nDemo ready. Log in as (password = username):\n"
                "    demo   everything (superuser)\n"
                "    alice  a claimant: her own claims (submit, withdraw)\n"
                "    bob    a claimant: his own claims\n"
                "    rita   a reviewer: every claim (approve, reject, hold, triage)\n"
                f"Dashboard {url}/   GraphiQL {url}/graphql/   Admin {url}/admin/\n"
            )
        )

    # ------------------------------------------------------------------ workflows

    def _load_workflow(self, path: Path) -> None:
        if not path.exists():
            raise CommandError(f"Example workflow {path} is missing.")
        document = load_document(path.read_text(encoding="utf-8"))
        name = document.get("name")
        existing = Workflow.objects.filter(name=name).first()
        if existing is not None and _canonical(export_workflow(existing)) == _canonical(document):
            self.stdout.write(f"Workflow {name!r}: up to date.")
            return
        try:
            import_workflow(document, replace=existing is not None)
        except WorkflowError as exc:
            raise CommandError(f"Could not load {path.name} [{exc.code}]: {exc}") from exc
        self.stdout.write(
            f"Workflow {name!r}: {'updated' if existing else 'created'} from {path.name}."
        )

    # ------------------------------------------------------------------ user

    def _demo_user(self):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
        )
        if (
            created
            or not user.check_password(DEMO_PASSWORD)
            or not (user.is_superuser and user.is_active)
        ):
            user.set_password(DEMO_PASSWORD)
            user.is_staff = user.is_superuser = user.is_active = True
            user.save()
        self.stdout.write(f"User {DEMO_USERNAME!r}: {'created' if created else 'exists'}.")
        return user

    def _role_users(self) -> None:
        User = get_user_model()
        reviewers, _ = Group.objects.get_or_create(name=REVIEWERS)
        perms = []
        for dotted in ROLE_PERMISSIONS:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is None:
                raise CommandError(
                    f"Permission {dotted} does not exist: run `manage.py migrate` first."
                )
            perms.append(perm)
        for username, (is_reviewer, _claims) in ROLES.items():
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com"}
            )
            if created or not user.check_password(username) or not user.is_active:
                user.set_password(username)
                user.is_active = True
                user.save()
            user.user_permissions.add(*perms)
            if is_reviewer:
                user.groups.add(reviewers)
            self.stdout.write(f"User {username!r}: {'created' if created else 'exists'}.")

    def _owners(self) -> None:
        """Give the example claims their owners (claims someone already owns are left alone)."""
        User = get_user_model()
        for username, (_is_reviewer, titles) in ROLES.items():
            owner = User.objects.get(username=username)
            Claim.objects.filter(title__in=titles, owner__isnull=True).update(owner=owner)

    # ------------------------------------------------------------------ claims

    def _example_claims(self) -> None:
        User = get_user_model()
        owners = {
            title: User.objects.get(username=username)
            for username, (_is_reviewer, titles) in ROLES.items()
            for title in titles
        }
        started = 0
        for title, claimant, amount, priority, workflow_name, actions in EXAMPLE_CLAIMS:
            with transaction.atomic():
                claim, _ = Claim.objects.get_or_create(
                    title=title,
                    claimant=claimant,
                    defaults={
                        "amount": Decimal(amount),
                        "priority": priority,
                        "owner": owners.get(title),  # before it starts: its work item is theirs
                    },
                )
                if (
                    WorkflowInstance.objects.for_object(claim)
                    .filter(workflow__name=workflow_name)
                    .exists()
                ):
                    continue
                instance = services.start_workflow_instance(workflow_name, claim)
                for action in actions:
                    if action == "@hold":
                        instance = services.set_workflow_on_hold(instance)
                    elif action == "@cancel":
                        instance = services.cancel_workflow_instance(instance)
                    else:
                        instance = services.update_workflow_step_status(instance, action)
                started += 1
        total = Claim.objects.count()
        self.stdout.write(
            f"Example claims: {started} instance(s) started, {total} claim(s) in all."
        )
