"""Policy exemptions as NSG Guard writes them (``nsg-guard exempt``'s own request builder), for the stand-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.cli.exempt import exemption_request
from shared.core.model import parse_nsg

ASSIGNMENT_NAME = "nsg-guard-internet-ssh"


def assignment_for(nsg_id: str) -> str:
    sub = nsg_id.split("/")[2]
    return f"/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/{ASSIGNMENT_NAME}"


def seed_exemption(azure: Any, nsg_id: str, rules: list[str], *, days: int = 30, ticket: str = "CHG-1",
                   created: datetime | None = None, expires: datetime | None = None,
                   created_by: str = "secops@contoso.example") -> dict[str, Any]:
    """An exemption for ``rules`` of the NSG as stored now (fingerprints of the rules' current content),
    created ``created`` (default now) and expiring ``expires`` (default created + days)."""
    nsg = parse_nsg(azure.get_nsg(nsg_id))
    created = created or datetime.now(UTC)
    name, props = exemption_request(nsg, rules, days, ticket, "vendor migration", "Waiver", assignment_for(nsg_id),
                                    365, created)
    if expires is not None:
        props["expiresOn"] = expires.astimezone(UTC).isoformat().replace("+00:00", "Z")
    stamp = created.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return azure.policy_exemptions.seed(nsg_id, name, props, created_by=created_by, created_at=stamp)


def expired_exemption(azure: Any, nsg_id: str, rules: list[str], ticket: str = "CHG-1") -> dict[str, Any]:
    now = datetime.now(UTC)
    return seed_exemption(azure, nsg_id, rules, ticket=ticket, created=now - timedelta(days=10),
                          expires=now - timedelta(minutes=1))
