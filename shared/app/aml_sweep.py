"""The Azure ML lens inside the nightly sweep (and the compute event): computes in, compute rows out.

The sweep calls, in order: :meth:`ComputeSweep.load` (workspaces from Resource Graph, computes per workspace
over ARM, ``listNodes`` for public clusters with SSH on), :meth:`observe` for every NSG it evaluates (only the
NSGs in front of a compute are kept), :meth:`decorate` on each NSG's rows, and :meth:`finish` once every NSG
has been seen: one verdict per compute, as rows. Failures are recorded through the sweep's ``fail`` (a
workspace that cannot be listed, a compute that does not parse) and never stop the sweep.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from shared.app.aml_rows import RECORD_COMPUTE, decorate, verdict_rows
from shared.app.rows import RowContext, _base, row_id
from shared.core.aml import (
    AML_COMPUTE,
    UNKNOWN,
    Compute,
    approvals_of,
    guards,
    is_aml_managed_nsg,
    judge,
    parse_compute,
)
from shared.core.errors import InputError, NsgGuardError, TransientError
from shared.core.exposure import Evaluator
from shared.core.inventory import Scope
from shared.core.model import Nsg

WORKSPACE_QUERY = """resources
| where type =~ 'microsoft.machinelearningservices/workspaces'
| project id, name, type, location, resourceGroup, subscriptionId, tags
| order by subscriptionId asc, id asc"""


class ComputeSource(Protocol):
    """Where computes come from (``shared.azure.aml.AzureMl``; stand-ins in tests)."""

    def workspace_pages(self, scope: Scope) -> Iterator[list[dict[str, Any]]]: ...

    def compute_pages(self, workspace_id: str) -> Iterator[list[dict[str, Any]]]: ...

    def list_nodes(self, compute_id: str) -> Any: ...


def load_compute(source: ComputeSource, raw: Any, owner_tag: str) -> tuple[Compute, Exception | None]:
    """Parse one compute; for a public cluster with SSH on, read its nodes' NAT ports too.

    ``listNodes`` is an action the identity may lack (403): the cluster is then judged on port 22 alone
    and the error is returned for the caller to record.
    """
    compute = parse_compute(raw, owner_tag)
    if compute.compute_type == AML_COMPUTE and compute.ssh_public_access and compute.has_public_ip:
        try:
            compute = parse_compute(raw, owner_tag, source.list_nodes(compute.id))
        except NsgGuardError as exc:  # 403 (InputError), 5xx (TransientError), gone since (404)
            return compute, exc
    return compute, None


class ComputeSweep:
    def __init__(self, source: ComputeSource, evaluator: Evaluator, ctx: RowContext,
                 fail: Callable[..., None], owner_tag: str = "owner") -> None:
        self.source = source
        self.evaluator = evaluator
        self.ctx = ctx
        self.fail = fail
        self.owner_tag = owner_tag
        self.computes: list[Compute] = []
        self.by_subnet: dict[str, list[Compute]] = {}
        self.by_vnet: dict[tuple[str, str], list[Compute]] = {}
        self.hops: dict[str, list[Nsg]] = {}
        self.approvals: dict[str, dict[tuple[str, int], Any]] = {}  # NSG id -> rules approved by an exemption
        self.claimed: set[str] = set()
        self.error_rows: list[dict[str, Any]] = []
        self.workspaces = 0
        self.complete = True
        self.counts: Counter[str] = Counter()

    # --- inventory -----------------------------------------------------------------------------------
    def load(self, scope: Scope) -> None:
        try:
            for page in self.source.workspace_pages(scope):
                for ws in page:
                    ws_id = ws.get("id") if isinstance(ws, dict) else None
                    if not isinstance(ws_id, str) or not ws_id:
                        self.fail("ml-workspaces", f"workspace row without an id: {str(ws)[:200]}")
                        continue
                    self.workspaces += 1
                    self._workspace(ws_id)
        except (TransientError, InputError) as exc:
            self.complete = False
            self.fail("ml-workspaces", exc)
        for c in self.computes:
            if c.subnet_id:
                self.by_subnet.setdefault(c.subnet_id.lower(), []).append(c)
            if c.vnet_key:
                self.by_vnet.setdefault(c.vnet_key, []).append(c)

    def _workspace(self, ws_id: str) -> None:
        try:
            for page in self.source.compute_pages(ws_id):
                for raw in page:
                    try:
                        compute, nodes_error = load_compute(self.source, raw, self.owner_tag)
                    except InputError as exc:
                        self._invalid(raw, exc)
                        continue
                    self.computes.append(compute)
                    if nodes_error is not None:
                        self.fail("ml-nodes", nodes_error, compute=compute.id)
        except NsgGuardError as exc:  # includes a workspace deleted since Resource Graph listed it (404)
            self.complete = False
            self.fail("ml-computes", exc, workspace=ws_id)

    def _invalid(self, raw: Any, exc: Exception) -> None:
        cid = raw.get("id") if isinstance(raw, dict) else None
        self.fail("compute", exc, compute=cid)
        if isinstance(cid, str) and "/computes/" in cid.lower():
            row = _base(self.ctx, RECORD_COMPUTE, row_id(self.ctx.run_id, RECORD_COMPUTE, cid))
            row.update({"ComputeId": cid, "ComputeName": cid.rstrip("/").rsplit("/", 1)[-1], "Status": UNKNOWN,
                        "Result": "error", "Reason": f"could not judge this compute: {str(exc)[:400]}",
                        "OpenFindingIds": []})
            self.error_rows.append(row)
            self.counts[UNKNOWN] += 1

    # --- NSGs ----------------------------------------------------------------------------------------
    def related(self, nsg: Nsg) -> list[Compute]:
        out: list[Compute] = []
        for subnet in nsg.subnet_ids:
            out.extend(self.by_subnet.get(subnet.lower(), ()))
        if is_aml_managed_nsg(nsg):
            out.extend(self.by_vnet.get((nsg.subscription_id.lower(), nsg.resource_group.lower()), ()))
        return [c for c in out if guards(nsg, c)]

    def observe(self, nsg: Nsg, evaluation: Any = None) -> None:
        """``evaluation``: the NSG's evaluation with exemptions applied (its approved rules count as such)."""
        if not self.computes:
            return
        # Only compute subnets are remembered: memory stays flat however many NSGs the sweep streams.
        self.claimed.update(k for k in (s.lower() for s in nsg.subnet_ids) if k in self.by_subnet)
        related = self.related(nsg)
        for c in related:
            self.hops.setdefault(c.id.lower(), []).append(nsg)
        if related and evaluation is not None:
            approved = approvals_of(evaluation)
            if approved:
                self.approvals[nsg.id.lower()] = approved

    def decorate(self, rows: list[dict[str, Any]], nsg: Nsg) -> None:
        if self.computes:
            decorate(rows, self.related(nsg))

    # --- verdicts ------------------------------------------------------------------------------------
    def finish(self, inventory_complete: bool) -> list[dict[str, Any]]:
        rows = list(self.error_rows)
        for c in self.computes:
            known = inventory_complete or (c.subnet_id or "").lower() in self.claimed
            own = c.vnet_key is not None and sum(o.has_public_ip for o in self.by_vnet.get(c.vnet_key, ())) == 1
            v = judge(c, self.evaluator, self.hops.get(c.id.lower(), ()), subnet_nsg_known=known,
                      aml_nsg_is_its_own=own, approvals=self.approvals)
            self.counts[v.status] += 1
            if v.severity == "critical":
                self.counts["critical"] += 1
            if c.owner is None and c.judged:
                self.counts["noOwner"] += 1
            rows.extend(verdict_rows(self.ctx, v))
        return rows

    def summary(self) -> dict[str, Any]:
        judged = sum(self.counts.get(k, 0) for k in ("Compliant", "NonCompliant", UNKNOWN))
        compliant = self.counts.get("Compliant", 0)
        return {"workspaces": self.workspaces, "computes": len(self.computes) + len(self.error_rows),
                "judged": judged, "compliant": compliant,
                "compliancePercent": round(100.0 * compliant / judged, 2) if judged else None,
                "critical": self.counts.get("critical", 0), "noOwner": self.counts.get("noOwner", 0),
                "complete": self.complete}
