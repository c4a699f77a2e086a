"""The nightly sweep use case: every NSG in scope, evaluated page by page, uploaded in batches.

Flow (independent of the Azure SDKs; adapters come in through :class:`SweepDeps`):

1. NICs with a public IP (one Resource Graph query, usually one page): the effective-exposure context.
2. NSGs, one Resource Graph page (<= 1,000 NSGs) at a time: parse, evaluate, apply effective exposure,
   turn into rows, append to a buffer that is uploaded every ``batch_rows`` rows. Nothing else is kept
   per NSG, so memory stays flat however large the estate. NSGs with active findings and a public NIC
   behind them wait (compactly) until their paired NSG has been seen, then are finished at the end.
3. Resource Graph unavailable (or a page failing after retries): per-subscription listing through
   azure-mgmt-network for the subscriptions not yet complete (rows are ordered by subscription, so those
   already complete are known). One subscription failing does not stop the others.
4. One ``sweep`` summary row; every failure (page, subscription, parse, upload) is listed in it.

Uploads go through the sink the deps provide: in production the outbox sink, which parks what Log
Analytics does not accept. If even parking fails, the sweep records the loss, finishes, and raises at
the end so the invocation shows as failed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.app.interfaces import RowSink
from shared.app.rows import (
    RowContext,
    WriteAhead,
    evaluation_row,
    finding_row,
    remediation_row,
    sweep_row,
    validate_rows,
)
from shared.core.effective import (
    REACHABLE,
    UNATTACHED,
    NsgExposure,
    apply_effective,
    exposure_of,
    is_partner,
    needs_pairing,
    public_paths,
)
from shared.core.errors import InputError, NsgGuardError, TransientError
from shared.core.exemptions import (
    DEFAULT_EXEMPT_TAG,
    ExemptionContext,
    ExemptionSettings,
    apply_exemptions,
    exemption_context,
    lapsed_exemption,
)
from shared.core.findings import STATUS_EXEMPT, STATUS_LATENT, STATUS_OPEN
from shared.core.inventory import NSG_QUERY, PUBLIC_NIC_QUERY, AttachmentIndex, Scope
from shared.core.model import parse_nsg
from shared.core.policy import SEVERITY_ORDER, Engine, NsgEvaluation
from shared.core.policyexemptions import ExemptionIndex, graph_exemptions

log = logging.getLogger("nsg_guard.sweep")

MAX_FAILURES_LISTED = 50


class GraphSource(Protocol):
    """Resource Graph: yields pages of rows for a query over a scope (``shared.azure.graph``)."""

    calls: int

    def pages(self, query: str, scope: Scope) -> Iterator[list[dict[str, Any]]]:
        """Raises TransientError / InputError when a page cannot be read (after its own retries)."""
        ...


class SubscriptionLister(Protocol):
    """Per-subscription NSG listing (ARM, ``nextLink`` paging): the fallback when Resource Graph fails."""

    def nsg_pages(self, subscription_id: str) -> Iterator[list[Any]]: ...


@dataclass
class SweepDeps:
    sink: RowSink
    engine: Engine
    graph: GraphSource | None = None
    lister: SubscriptionLister | None = None
    scope: Scope = field(default_factory=Scope)
    owner_tag: str = "owner"
    exempt_tag: str = DEFAULT_EXEMPT_TAG
    batch_rows: int = 5000
    clock: Callable[[], float] = time.monotonic
    strict_fields: bool = False  # NSGs come from Azure (ARM, Resource Graph): unknown rule fields are logged
    exemption_settings: ExemptionSettings | None = None  # None: defaults with exempt_tag
    reverter: Any = None  # shared.azure.remediate.Reverter: reverts findings whose exemption lapsed
    exemption_fetch: Callable[[str], Any] | None = None  # ARM GET of one exemption (systemData)
    jobs: Any = None  # shared.app.revertjobs.JobQueue: set, lapsed exemptions are reverted by revert_job
    computes: Any = None  # shared.app.aml_sweep.ComputeSource: the Azure ML lens (None = off)


@dataclass
class SweepResult:
    sweep_id: str
    summary: dict[str, Any]
    rows_sent: int
    lost_rows: int

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.summary.get("failures", []))


def new_sweep_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"sweep-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_sweep(deps: SweepDeps, *, sweep_id: str | None = None) -> SweepResult:
    """Sweep the scope once. Raises TransientError only if rows could neither be uploaded nor parked."""
    result = _Sweep(deps, sweep_id or new_sweep_id()).run()
    if result.lost_rows:
        raise TransientError(f"sweep {result.sweep_id}: {result.lost_rows} rows could neither be ingested nor "
                             "parked in the outbox; the next sweep will produce them again")
    return result


class _Sweep:
    def __init__(self, deps: SweepDeps, sweep_id: str) -> None:
        self.deps = deps
        self.sweep_id = sweep_id
        self.ctx = RowContext(trigger="sweep", run_id=sweep_id, sweep_id=sweep_id, owner_tag=deps.owner_tag)
        self.engine = deps.engine
        self.exempt_tag = deps.exempt_tag
        self.now = self.ctx.time  # one "now" per sweep: exemption expiry is judged consistently
        self.ports = tuple(wp.port for wp in deps.engine.policy.watched)
        self.extra_tags = deps.engine.policy.extra_service_tags
        self.buffer: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.nsgs = self.compliant = self.rows_sent = self.lost_rows = self.pages = 0
        self.open_by_severity: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.effective_counts: Counter[str] = Counter()
        self.index = AttachmentIndex.unavailable()
        self.partners: dict[str, dict[int, Any]] = {}
        self.pending: list[tuple[NsgEvaluation, NsgExposure]] = []
        self.current_sub: str | None = None
        self.current_sub_ids: set[str] = set()
        self.inventory_complete = True
        self.sources: list[str] = []
        self.graph_calls = {"nics": 0, "nsgs": 0}
        self.exemptions = ExemptionContext()
        self.exemptions_in_force = 0
        self.exemption_calls = 0
        self.budget: Any = None
        self.reverted: dict[str, NsgEvaluation] = {}
        self.aml = _aml_lens(deps, self)

    # --- driver ------------------------------------------------------------------------------------
    def run(self) -> SweepResult:
        started = self.deps.clock()
        log.info("sweep %s started: scope %s", self.sweep_id, self.deps.scope.describe())
        self._load_context()
        self._load_exemptions()
        if self.aml is not None:
            self.aml.load(self.deps.scope)
        self._inventory()
        for evaluation, own in self.pending:
            paths = public_paths(evaluation.nsg, self.index, inventory_complete=self.inventory_complete)
            self._finish(evaluation, paths, own)
        self.pending.clear()
        if self.aml is not None:
            self._emit(self.aml.finish(self.inventory_complete))
        summary = self._summary(self.deps.clock() - started)
        if self.aml is not None:
            summary["computes"] = self.aml.summary()
        self._emit([sweep_row(self.ctx, summary)])
        self._flush()
        summary["rowsSent"] = self.rows_sent  # after the summary row itself (not in the uploaded Details)
        log.info("sweep %s done: %d NSGs, %s%% compliant, %d failures", self.sweep_id, self.nsgs,
                 summary["compliancePercent"], len(self.failures))
        return SweepResult(self.sweep_id, summary, self.rows_sent, self.lost_rows)

    def _fail(self, stage: str, error: BaseException | str, **where: Any) -> None:
        entry = {"stage": stage, **where, "error": str(error)[:500]}
        self.failures.append(entry)
        log.error("sweep %s: %s failed %s: %s", self.sweep_id, stage, where or "", error)

    def _graph_pages(self, query: str, key: str) -> Iterator[list[dict[str, Any]]]:
        graph = self.deps.graph
        assert graph is not None
        before = graph.calls
        try:
            yield from graph.pages(query, self.deps.scope)
        finally:
            self.graph_calls[key] += graph.calls - before

    # --- context -----------------------------------------------------------------------------------
    def _load_context(self) -> None:
        if self.deps.graph is None:
            self._fail("nic-inventory", "Resource Graph is not configured: reachability (critical) is unknown")
            return
        try:
            self.index = AttachmentIndex.from_rows(row for page in self._graph_pages(PUBLIC_NIC_QUERY, "nics")
                                                   for row in page)
        except (TransientError, InputError) as exc:
            self.index = AttachmentIndex.unavailable()
            self._fail("nic-inventory", exc)

    def _load_exemptions(self) -> None:
        # Listed once per run; expiry is judged against the sweep's one "now".
        settings = self.deps.exemption_settings or ExemptionSettings(tag_name=self.exempt_tag)
        if self.deps.graph is None:
            index = ExemptionIndex.unavailable("Resource Graph is not configured") if settings.policy \
                else ExemptionIndex()
        else:
            before = self.deps.graph.calls
            index = graph_exemptions(self.deps.graph, self.deps.scope, settings.policy, now=self.now,
                                     max_days=settings.max_days, assignment=settings.assignment,
                                     fetch=self.deps.exemption_fetch)
            self.exemption_calls = self.deps.graph.calls - before
        if not index.available:
            self._fail("exemptions", index.error or "policy exemptions could not be read")
        for rejected in index.rejected:
            self._fail("exemptions", rejected)
        self.exemptions = ExemptionContext(settings, index)
        self.exemptions_in_force = len(index.in_force(self.now))

    # --- inventory -----------------------------------------------------------------------------------
    def _inventory(self) -> None:
        error: NsgGuardError | None = None
        if self.deps.graph is not None:
            self.sources.append("resource-graph")
            try:
                for page in self._graph_pages(NSG_QUERY, "nsgs"):
                    self.pages += 1
                    self._process(page)
                return
            except (TransientError, InputError) as exc:
                error = exc
        self._fallback(error)

    def _fallback(self, error: NsgGuardError | None) -> None:
        scope = self.deps.scope
        where = {"afterPages": self.pages} if error is not None else {}
        if not scope.subscriptions or self.deps.lister is None:
            self.inventory_complete = False
            why = ("per-subscription fallback needs SWEEP_SUBSCRIPTIONS (the scope is "
                   f"{scope.kind})" if self.deps.lister is not None else "no per-subscription lister configured")
            self._fail("resource-graph", f"{error or 'Resource Graph is not configured'}; {why}", **where)
            return
        done = self.current_sub
        remaining = [s for s in scope.subscriptions if done is None or s.lower() >= done]
        if error is not None:
            self._fail("resource-graph", error, **where, fallback="per-subscription",
                       subscriptions=len(remaining))
        self.sources.append("per-subscription")
        for sub in remaining:
            already = self.current_sub_ids if sub.lower() == done else set()
            try:
                for page in self.deps.lister.nsg_pages(sub):
                    self.pages += 1
                    self._process(page, skip=already)
            except (TransientError, InputError) as exc:
                self.inventory_complete = False
                self._fail("list", exc, subscription=sub)

    def _process(self, page: Iterable[Any], skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for raw in page:
            try:
                nsg = parse_nsg(raw, self.extra_tags, strict=self.deps.strict_fields)
            except InputError as exc:
                self._invalid(raw, exc)
                continue
            key = nsg.id.lower()
            if key in skip:
                continue
            sub = nsg.subscription_id.lower()
            if sub != self.current_sub:
                self.current_sub, self.current_sub_ids = sub, set()
            self.current_sub_ids.add(key)
            self._evaluate(nsg)

    def _invalid(self, raw: Any, exc: InputError) -> None:
        nsg_id = raw.get("id") if isinstance(raw, dict) else getattr(raw, "id", None)
        self._fail("parse", exc, nsg=nsg_id)
        if isinstance(nsg_id, str) and "/networksecuritygroups/" in nsg_id.lower():
            self.nsgs += 1  # counted (not compliant: we could not tell) and made visible in the table
            self._emit([evaluation_row(self.ctx, None, (), nsg_id=nsg_id, status="Error",
                                       details={"error": str(exc)})])

    def _evaluate(self, nsg: Any) -> None:
        # The same path as events: evaluate, then exemptions (Exempt findings are kept, muted).
        evaluation = apply_exemptions(self.engine.evaluate(nsg), self.exempt_tag, self.now, self.exemptions)
        evaluation = self._revert_lapsed(evaluation)
        if self.aml is not None:  # a compute is judged on its NSG as it is after our writes
            after = self.reverted.get(nsg.id.lower())
            self.aml.observe(after.nsg if after is not None else nsg, after if after is not None else evaluation)
        partner = is_partner(nsg, self.index)
        waits = any(f.active and f.status == STATUS_OPEN for f in evaluation.findings) and \
            needs_pairing(nsg, self.index)
        own = exposure_of(self.engine.evaluator, nsg, self.ports) if (partner or waits) else None
        if partner:
            assert own is not None
            self.partners[nsg.id.lower()] = own.allowed
        self.index.note_subnets(nsg.id, nsg.subnet_ids)
        if waits:
            assert own is not None
            self.pending.append((evaluation, own))
            return
        paths = public_paths(nsg, self.index, inventory_complete=False) if self.index.available else ()
        self._finish(evaluation, paths, own)

    def _revert_lapsed(self, evaluation: NsgEvaluation) -> NsgEvaluation:
        """Expiry acts: findings whose exemption expired, changed or was never approved go to the revert path
        (which acts only in REVERT_MODE=enforce, records dry-runs, and shares one blast-radius budget)."""
        reverter = self.deps.reverter
        if reverter is None or not any(lapsed_exemption(f) for f in evaluation.findings):
            return evaluation
        if self.deps.jobs is not None:  # like events: the writes happen in revert_job, under the NSG's lease
            from shared.app.revertjobs import RevertJob

            job = RevertJob(evaluation.nsg.id, f"sweep:{self.ctx.run_id}:{evaluation.nsg.id}", datetime.now(UTC))
            try:
                self.deps.jobs.enqueue(job.to_json())
            except NsgGuardError as exc:
                self._fail("revert", exc, nsg=evaluation.nsg.id)
            return evaluation
        if self.budget is None:
            from shared.app.revert import Budget

            self.budget = Budget(reverter.config.max_changes)

        try:
            with exemption_context(self.exemptions):
                revert = reverter.run(evaluation, self.budget, before_write=WriteAhead(self.deps.sink, self.ctx))
        except NsgGuardError as exc:
            self._fail("revert", exc, nsg=evaluation.nsg.id)
            return evaluation
        self._emit([remediation_row(self.ctx, r) for r in revert.records])
        if revert.retryable_failure:
            self._fail("revert", revert.retryable_failure, nsg=evaluation.nsg.id)
        if revert.wrote and revert.evaluation is not None:
            self.reverted[evaluation.nsg.id.lower()] = revert.evaluation
        return evaluation

    def _finish(self, evaluation: NsgEvaluation, paths: Any, own: NsgExposure | None) -> None:
        result = apply_effective(evaluation, self.engine.evaluator, index_available=self.index.available,
                                 paths=paths, own=own, paired=self.partners.get)
        rows = []
        for f in result.evaluation.findings:
            row = finding_row(f, self.ctx)
            row["Attachments"] = result.attachments
            rows.append(row)
            self.status_counts[f.status] += 1
            if f.counts_against_compliance:
                self.open_by_severity[f.severity] += 1
            eff = f.details.get("effective")
            if eff in (REACHABLE, UNATTACHED):
                self.effective_counts[eff] += 1
            if f.severity == "critical":
                self.effective_counts["critical"] += 1
        after = self.reverted.pop(evaluation.nsg.id.lower(), None)  # like events: the row after our writes
        final = result.evaluation if after is None else after
        ev_ctx = self.ctx if after is None else replace(self.ctx, time=datetime.now(UTC))
        ev_row = evaluation_row(ev_ctx, final.nsg, final.findings)
        ev_row["Attachments"] = result.attachments
        rows.append(ev_row)
        self.nsgs += 1
        self.compliant += final.compliant
        if self.aml is not None:
            self.aml.decorate(rows, final.nsg)
        self._emit(rows)

    # --- output --------------------------------------------------------------------------------------
    def _emit(self, rows: list[dict[str, Any]]) -> None:
        self.buffer.extend(rows)
        if len(self.buffer) >= self.deps.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
        validate_rows(batch)
        try:
            self.deps.sink.send(batch)
            self.rows_sent += len(batch)
        except TransientError as exc:
            self.lost_rows += len(batch)
            self._fail("upload", exc, rows=len(batch))

    def _summary(self, seconds: float) -> dict[str, Any]:
        severities = sorted((s for s in SEVERITY_ORDER if s != "info"), key=lambda s: -SEVERITY_ORDER[s])
        subs_failed = sorted({f["subscription"] for f in self.failures if "subscription" in f})
        return {
            "scope": self.deps.scope.describe(),
            "source": "+".join(self.sources) or "none",
            "nsgs": self.nsgs,
            "compliant": self.compliant,
            "compliancePercent": round(100.0 * self.compliant / self.nsgs, 2) if self.nsgs else None,
            "findings": {s: self.open_by_severity.get(s, 0) for s in severities},
            "latent": self.status_counts.get(STATUS_LATENT, 0),
            "exempt": self.status_counts.get(STATUS_EXEMPT, 0),
            "exemptionsInForce": self.exemptions_in_force,
            "exemptionGraphCalls": self.exemption_calls,
            "effective": {"critical": self.effective_counts.get("critical", 0),
                          "reachable": self.effective_counts.get(REACHABLE, 0),
                          "unattached": self.effective_counts.get(UNATTACHED, 0),
                          "publicNics": len(self.index.nics), "contextAvailable": self.index.available},
            "failures": self.failures[:MAX_FAILURES_LISTED],
            "failureCount": len(self.failures),
            "failedSubscriptions": subs_failed,
            "pages": self.pages,
            "graphCalls": dict(self.graph_calls),
            "durationSeconds": round(seconds, 3),
        }



def _aml_lens(deps: SweepDeps, sweep: _Sweep) -> Any:
    """The Azure ML lens (``shared.app.aml_sweep``) when the deps carry a compute source."""
    if deps.computes is None:
        return None
    from shared.app.aml_sweep import ComputeSweep

    return ComputeSweep(deps.computes, deps.engine.evaluator, sweep.ctx, sweep._fail, deps.owner_tag)
