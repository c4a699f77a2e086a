"""Where an NSG is attached, the same answer on every path (scan, event, sweep).

Attachment never changes a finding's severity or status: an NSG attached to nothing today is one subnet
association away from exposure, and a sweep that downgraded it would "resolve" what the event path had just
reported (MTTR would count a remediation nobody made). It is shown beside the finding instead: the
``attachment`` field of ``scan`` JSON, the ATTACHED column of the table, the ``Attachments`` column of rows.
"""

from __future__ import annotations

from typing import Any

from shared.core.model import Nsg

ATTACHED, UNATTACHED = "attached", "unattached"
MAX_LISTED = 20  # ids listed per kind (Log Analytics truncates values over 64 KB)


def attachment_of(nsg: Nsg) -> str:
    return ATTACHED if nsg.subnet_ids or nsg.nic_ids else UNATTACHED


def attachment_column(nsg: Nsg) -> dict[str, Any]:
    """The ``Attachments`` column for an NSG (the sweep adds its effective-exposure view to it)."""
    return {"attachment": attachment_of(nsg),
            "subnets": list(nsg.subnet_ids[:MAX_LISTED]), "networkInterfaces": list(nsg.nic_ids[:MAX_LISTED]),
            "subnetCount": len(nsg.subnet_ids), "networkInterfaceCount": len(nsg.nic_ids)}
