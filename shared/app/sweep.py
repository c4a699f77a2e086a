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
from shared.app.revert import held_records
from shared.app.rows import (
    RowContext,
    WriteAhead,
    evaluation_row,
    finding_row,
    remediation_row,
    sweep_row,
    validate_rows,
)
from shared.core.blastradius import Candidate, select
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
        self.lapsed: set[str] = set()  # NSGs with a lapsed exemption and something to revert
        self.queued: list[Candidate] = []  # with a queue: ranked after effective exposure, queued at the end
        self.deferred: list[tuple[NsgEvaluation, NsgExposure | None, bool]] = []  # without one: reverted at the end
        self.revert_summary: dict[str, Any] | None = None
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
        self._act()
        if self.aml is not None:
            self._emit(self.aml.finish(self.inventory_complete))
        summary = self._summary(self.deps.clock() - started)
        if self.aml is not None:
            summary["computes"] = self.aml.summary()
        if self.revert_summary is not None:
            summary["revert"] = self.revert_summary
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
        candidate = self._revert_candidate(evaluation)
        partner = is_partner(nsg, self.index)
        waits = any(f.active and f.status == STATUS_OPEN for f in evaluation.findings) and \
            needs_pairing(nsg, self.index)
        own = exposure_of(self.engine.evaluator, nsg, self.ports) if (partner or waits) else None
        if partner:
            assert own is not None
            self.partners[nsg.id.lower()] = own.allowed
        self.index.note_subnets(nsg.id, nsg.subnet_ids)
        if candidate and self.deps.jobs is None:
            # Reverted in place at the end, worst first within the per-run cap: its rows wait until then.
            self.deferred.append((evaluation, own, waits))
            return
        if self.aml is not None:
            self.aml.observe(nsg, evaluation)
        if waits:
            assert own is not None
            self.pending.append((evaluation, own))
            return
        paths = public_paths(nsg, self.index, inventory_complete=False) if self.index.available else ()
        self._finish(evaluation, paths, own)

    def _revert_candidate(self, evaluation: NsgEvaluation) -> bool:
        """Expiry acts: an NSG with a finding whose exemption expired, changed or was never approved goes to the
        revert path (which acts only in REVERT_MODE=enforce and records dry-runs) when there is something to
        revert. Which of them are reverted in this run is decided at the end (``_act``): the worst first, at
        most ``REVERT_MAX_NSGS_PER_RUN``."""
        reverter = self.deps.reverter
        if reverter is None or not any(lapsed_exemption(f) for f in evaluation.findings):
            return False
        from shared.core.remediation import needs_revert

        if not needs_revert(evaluation.nsg, evaluation.findings, self.engine.evaluator, reverter.config.scope):
            return False
        self.lapsed.add(evaluation.nsg.id.lower())
        return True

    # --- the revert of lapsed exemptions, bounded per run ----------------------------------------------
    def _candidate(self, evaluation: NsgEvaluation, payload: Any) -> Candidate:
        """Ranked on the findings as finished (effective exposure applied: a reachable NSG is critical)."""
        scope = self.deps.reverter.config.scope
        findings = tuple(scope.targets(evaluation.findings)) or tuple(
            f for f in evaluation.findings if lapsed_exemption(f))
        return Candidate(evaluation.nsg.id, findings, payload)

    def _act(self) -> None:
        """Revert the worst ``cap`` candidates (queue them, or in place without a queue); hold the rest."""
        if self.deps.reverter is None:
            return
        cap = self.deps.reverter.config.max_nsgs_per_run
        in_place = []
        for evaluation, own, waits in self.deferred:
            paths = public_paths(evaluation.nsg, self.index, inventory_complete=self.inventory_complete) if waits \
                else public_paths(evaluation.nsg, self.index, inventory_complete=False) if self.index.available \
                else ()
            effective = apply_effective(evaluation, self.engine.evaluator, index_available=self.index.available,
                                        paths=paths, own=own, paired=self.partners.get)
            in_place.append(self._candidate(effective.evaluation, (evaluation, own, paths)))
        self.deferred.clear()
        selection = select([*self.queued, *in_place], cap)
        self.queued.clear()
        self.revert_summary = selection.to_json()
        for c in selection.taken:
            if self.deps.jobs is not None:
                self._enqueue(c.nsg_id)
            else:
                self._revert_in_place(*c.payload)
        mode = self.deps.reverter.config.mode
        for c in selection.held:
            nsg = c.findings[0].nsg if c.findings else c.payload[0].nsg
            self._emit([remediation_row(self.ctx, r) for r in held_records(nsg, c, selection, mode)])
            if c.payload is not None:  # in place: finished as it is (the Open finding stays)
                evaluation, own, paths = c.payload
                if self.aml is not None:
                    self.aml.observe(evaluation.nsg, evaluation)
                self._finish(evaluation, paths, own)
        if selection.held:
            log.warning("sweep %s: %d of %d NSGs to revert held by REVERT_MAX_NSGS_PER_RUN=%d (next run takes "
                        "them, worst first)", self.sweep_id, len(selection.held), selection.total, cap)

    def _enqueue(self, nsg_id: str) -> None:
        # Like events: the writes happen in revert_job, under the NSG's lease.
        from shared.app.revertjobs import RevertJob

        job = RevertJob(nsg_id, f"sweep:{self.ctx.run_id}:{nsg_id}", datetime.now(UTC))
        try:
            self.deps.jobs.enqueue(job.to_json())
        except NsgGuardError as exc:
            self._fail("revert", exc, nsg=nsg_id)

    def _revert_in_place(self, evaluation: NsgEvaluation, own: NsgExposure | None, paths: Any) -> None:
        """Without a queue (local runs): revert now, then finish the NSG as re-read after the writes."""
        reverter = self.deps.reverter
        if self.budget is None:
            from shared.app.revert import Budget

            self.budget = Budget(reverter.config.max_changes)
        try:
            with exemption_context(self.exemptions):
                revert = reverter.run(evaluation, self.budget, before_write=WriteAhead(self.deps.sink, self.ctx))
        except NsgGuardError as exc:
            self._fail("revert", exc, nsg=evaluation.nsg.id)
            revert = None
        if revert is not None:
            self._emit([remediation_row(self.ctx, r) for r in revert.records])
            if revert.retryable_failure:
                self._fail("revert", revert.retryable_failure, nsg=evaluation.nsg.id)
            if revert.wrote and revert.evaluation is not None:
                self.reverted[evaluation.nsg.id.lower()] = revert.evaluation
        if self.aml is not None:  # a compute is judged on its NSG as it is after our writes
            after = self.reverted.get(evaluation.nsg.id.lower())
            self.aml.observe(after.nsg if after is not None else evaluation.nsg,
                             after if after is not None else evaluation)
        self._finish(evaluation, paths, own)

    def _finish(self, evaluation: NsgEvaluation, paths: Any, own: NsgExposure | None) -> None:
        result = apply_effective(evaluation, self.engine.evaluator, index_available=self.index.available,
                                 paths=paths, own=own, paired=self.partners.get)
        if self.deps.jobs is not None and evaluation.nsg.id.lower() in self.lapsed:
            self.queued.append(self._candidate(result.evaluation, None))  # queued (or held) at the end
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
