"""Auto-revert: guard, plan, write through a rule writer, verify after write, re-plan on concurrent change.

``Reverter`` is the use case (it depends on the small ``NsgReader``/``RuleWriter`` protocols only);
``shared.azure.remediate.AzureRuleWriter`` is the SDK adapter. Rule PUTs carry no ``If-Match`` (the REST spec
declares none for them; docs/revert.md, Limits), so instead of trusting an etag every write is followed by a
fresh GET and a re-evaluation with the same engine: the targets must be gone and the rules must read back
exactly as written. A concurrent change that reopens a port is re-planned (at most ``max_attempts`` rounds),
then recorded as a failure. Our own deny rule evaluates clean (the offending rule becomes latent), so the event
caused by our write plans nothing: no loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.app.interfaces import NsgReader
from shared.core.blastradius import DEFAULT_MAX_NSGS_PER_RUN, SKIP_HELD, Candidate, Selection
from shared.core.errors import NsgGuardError, NsgNotFound
from shared.core.exemptions import DEFAULT_EXEMPT_TAG, apply_exemptions
from shared.core.model import Nsg, same_rule
from shared.core.policy import Engine, NsgEvaluation
from shared.core.remediation import (
    DEFAULT_STRATEGIES,
    OP_DELETE,
    SKIP_NO_SAFE_CHANGE,
    Action,
    Plan,
    RevertScope,
    Skip,
    plan_revert,
)
from shared.core.revertaudit import drift, reconstruct

MODE_OFF, MODE_DRY_RUN, MODE_ENFORCE = "off", "dry-run", "enforce"
RESULT_PLANNED, RESULT_APPLIED, RESULT_VERIFIED, RESULT_FAILED, RESULT_SKIPPED = (
    "planned", "applied", "verified", "failed", "skipped")
SKIP_BLAST_RADIUS = "blast-radius"

FAIL_CONFLICT, FAIL_TRANSIENT, FAIL_PERMANENT, FAIL_GONE = "conflict", "transient", "permanent", "gone"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"anotheroperationinprogress", "retryableerror", "retryableerrorduetoanotheroperation",
                             "internalservererror", "toomanyrequests", "canceled"})
CONFLICT_CODES = frozenset({"securityruleconflict", "precondition failed", "preconditionfailed"})


class WriteFailed(NsgGuardError):
    """A rule write did not happen. ``kind``: conflict (re-plan) | transient | permanent | gone."""

    def __init__(self, message: str, kind: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.status, self.code = kind, status, code

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "status": self.status, "code": self.code, "message": str(self)}


class RuleWriter(Protocol):
    def put_rule(self, nsg_id: str, body: dict[str, Any]) -> None:
        """Create or replace one security rule and wait for the long-running operation. Raises WriteFailed."""
        ...

    def delete_rule(self, nsg_id: str, name: str) -> None:
        """Delete one security rule and wait. Raises WriteFailed (a missing rule is not an error)."""
        ...


def apply_action(writer: RuleWriter, nsg_id: str, action: Action) -> None:
    if action.op == OP_DELETE:
        writer.delete_rule(nsg_id, action.name)
    else:
        writer.put_rule(nsg_id, action.rule)


# --- configuration and results ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RevertConfig:
    mode: str = MODE_OFF
    max_changes: int = 10
    scope: RevertScope = RevertScope()
    exempt_tag: str = DEFAULT_EXEMPT_TAG
    max_attempts: int = 3
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    max_nsgs_per_run: int = DEFAULT_MAX_NSGS_PER_RUN  # blast radius across NSGs (shared.core.blastradius)

    @classmethod
    def from_settings(cls, settings: Any) -> RevertConfig:
        return cls(mode=settings.revert_mode, max_changes=settings.revert_max_changes,
                   scope=RevertScope(port_kinds=tuple(settings.revert_port_kinds)), exempt_tag=settings.exempt_tag,
                   strategies=tuple(getattr(settings, "revert_strategies", DEFAULT_STRATEGIES)),
                   max_nsgs_per_run=getattr(settings, "revert_max_nsgs_per_run", DEFAULT_MAX_NSGS_PER_RUN))


class Budget:
    """Blast radius: how many rule writes one run (one event, one sweep) may still make."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def take(self, n: int) -> bool:
        if n > self.remaining:
            return False
        self.used += n
        return True


@dataclass(frozen=True, slots=True)
class RemediationRecord:
    """One audit row's worth: an action (planned / written / failed) or a skipped target."""

    nsg: Nsg
    mode: str
    result: str
    attempt: int
    sequence: int
    action: Action | None = None
    skip: Skip | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def finding_ids(self) -> tuple[str, ...]:
        return self.action.finding_ids if self.action else self.skip.finding_ids if self.skip else ()

    @property
    def ports(self) -> tuple[int, ...]:
        return self.action.ports if self.action else self.skip.ports if self.skip else ()


@dataclass
class RevertOutcome:
    records: list[RemediationRecord] = field(default_factory=list)
    evaluation: NsgEvaluation | None = None  # the NSG's evaluation after the revert (None: unchanged)
    retryable_failure: str | None = None  # set when a write failed transiently: the caller asks for redelivery

    @property
    def wrote(self) -> bool:
        return any(r.result in (RESULT_APPLIED, RESULT_VERIFIED) for r in self.records)


def held_records(nsg: Nsg, candidate: Candidate, selection: Selection, mode: str) -> list[RemediationRecord]:
    """The ``skipped`` rows of an NSG held by the per-run cap: one per offending rule, naming its findings, so
    the table says why an Open internet finding was not reverted in this run (and that the next run will)."""
    by_rule: dict[str, list[Any]] = {}
    for f in candidate.findings:
        by_rule.setdefault(f.rule.name, []).append(f)
    position = 1 + next((i for i, c in enumerate(selection.held) if c.nsg_id.lower() == candidate.nsg_id.lower()),
                        0)
    details = {"reason": selection.reason(), "skipCode": SKIP_HELD, "held": True, "cap": selection.cap,
               "candidates": selection.total, "queuePosition": position, "severity": candidate.severity}
    if not by_rule:  # only NSG Guard's own stale deny to remove: still said, never silent
        return [RemediationRecord(nsg, mode, RESULT_SKIPPED, 1, 0, details=dict(details))]
    return [RemediationRecord(nsg, mode, RESULT_SKIPPED, 1, i,
                              skip=Skip(name, tuple(sorted({f.port for f in fs})),
                                        tuple(f.finding_id for f in fs), SKIP_HELD, selection.reason()),
                              details=dict(details))
            for i, (name, fs) in enumerate(sorted(by_rule.items()))]


# --- the use case ----------------------------------------------------------------------------------------

class Reverter:
    def __init__(self, config: RevertConfig, engine: Engine, reader: NsgReader, writer: RuleWriter | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if config.mode == MODE_ENFORCE and writer is None:
            raise ValueError("enforce mode needs a RuleWriter")
        self.config, self.engine, self.reader, self.writer, self.clock = config, engine, reader, writer, clock

    def evaluate(self, nsg: Nsg) -> NsgEvaluation:
        return apply_exemptions(self.engine.evaluate(nsg), self.config.exempt_tag, self.clock())

    def plan(self, evaluation: NsgEvaluation, protected: tuple[str, ...] = ()) -> Plan:
        return plan_revert(evaluation.nsg, evaluation.findings, self.engine.evaluator, self.config.scope,
                           self.engine.policy.extra_service_tags, lambda nsg: self.evaluate(nsg).findings,
                           strategies=self.config.strategies, max_changes=self.config.max_changes,
                           protected=protected)

    def run(self, evaluation: NsgEvaluation, budget: Budget | None = None, *, protected: tuple[str, ...] = (),
            before_write: Callable[[list[RemediationRecord]], None] | None = None,
            reconstructed: bool = False) -> RevertOutcome:
        """Revert what the evaluation (exemptions applied) shows, according to the mode.

        ``protected``: rule names never touched (the JIT service wrote them). ``before_write`` gets the
        ``planned`` records and must make them durable (rows through the outbox) before anything is written;
        if it raises, nothing is written. ``reconstructed`` (a retried job) first re-emits an ``applied`` record
        for every NSG Guard rule present, rebuilt from the rule itself.
        """
        mode = self.config.mode
        if mode == MODE_OFF:
            return RevertOutcome()
        budget = budget or Budget(self.config.max_changes)
        plan = self.plan(evaluation, tuple(protected))
        rebuilt = [RemediationRecord(evaluation.nsg, mode, RESULT_APPLIED, 0, i, action=a,
                                     details={"reason": a.reason, "reconstructed": True})
                   for i, a in enumerate(reconstruct(evaluation.nsg))] if reconstructed and mode == MODE_ENFORCE \
            else []
        if not plan.actions and not plan.skipped:
            return RevertOutcome(rebuilt)
        if mode == MODE_DRY_RUN:
            return RevertOutcome(self._dry_run(evaluation.nsg, plan, budget))
        outcome = self._enforce(evaluation, plan, budget, tuple(protected), before_write)
        outcome.records[:0] = rebuilt
        return outcome

    def _skips(self, nsg: Nsg, plan: Plan, attempt: int, seen: set[tuple[str, str]]) -> list[RemediationRecord]:
        out = []
        for s in plan.skipped:
            key = (s.rule_name.lower(), s.code)
            if key not in seen:
                seen.add(key)
                out.append(RemediationRecord(nsg, self.config.mode, RESULT_SKIPPED, attempt, len(out), skip=s,
                                             details={"reason": s.reason}))
        return out

    def _over_budget(self, nsg: Nsg, plan: Plan, budget: Budget, attempt: int) -> list[RemediationRecord]:
        reason = (f"blast radius: {len(plan.actions)} change(s) needed, {budget.remaining} of "
                  f"{budget.limit} left in this run (REVERT_MAX_CHANGES)")
        return [RemediationRecord(nsg, self.config.mode, RESULT_SKIPPED, attempt, i, action=a,
                                  details={"reason": reason, "skipCode": SKIP_BLAST_RADIUS})
                for i, a in enumerate(plan.actions)]

    def _dry_run(self, nsg: Nsg, plan: Plan, budget: Budget) -> list[RemediationRecord]:
        records = self._skips(nsg, plan, 1, set())
        if not budget.take(len(plan.actions)):
            return records + self._over_budget(nsg, plan, budget, 1)
        records += [RemediationRecord(nsg, MODE_DRY_RUN, RESULT_PLANNED, 1, i, action=a,
                                      details={"reason": a.reason})
                    for i, a in enumerate(plan.actions)]
        return records

    def _enforce(self, evaluation: NsgEvaluation, plan: Plan, budget: Budget, protected: tuple[str, ...] = (),
                 before_write: Callable[[list[RemediationRecord]], None] | None = None) -> RevertOutcome:
        assert self.writer is not None
        outcome = RevertOutcome()
        seen_skips: set[tuple[str, str]] = set()
        current = evaluation
        attempt = 1
        while True:
            nsg = current.nsg
            outcome.records += self._skips(nsg, plan, attempt, seen_skips)
            if not plan.actions:
                break
            if not budget.take(len(plan.actions)):
                outcome.records += self._over_budget(nsg, plan, budget, attempt)
                break
            # Re-read right before writing: a rule changed since we planned from it means re-planning, never
            # overwriting (the user's edit wins; the planning time is no longer a window).
            fresh = self._reread(nsg.id)
            if fresh is None:
                return outcome
            changed = drift(plan, nsg, fresh.nsg)
            if changed:
                outcome.records += [RemediationRecord(
                    nsg, MODE_ENFORCE, RESULT_SKIPPED if attempt < self.config.max_attempts else RESULT_FAILED,
                    attempt, seq, action=a, details={"reason": a.reason, "outcome": "re-planned: changed between "
                                                     "read and write", "changed": changed})
                    for seq, a in enumerate(plan.actions)]
                budget.used -= len(plan.actions)
                outcome.evaluation = fresh
                if attempt >= self.config.max_attempts:
                    break
                attempt += 1
                current, plan = fresh, self.plan(fresh, protected)
                continue
            if before_write is not None:
                before_write([RemediationRecord(nsg, MODE_ENFORCE, RESULT_PLANNED, attempt, seq, action=a,
                                                      details={"reason": a.reason, "writeAhead": True})
                                    for seq, a in enumerate(plan.actions)])
            written: list[tuple[int, Action]] = []
            failure: WriteFailed | None = None
            for seq, action in enumerate(plan.actions):
                if seq and action.replaces is not None:  # touches an existing rule: read it once more
                    again = self._reread(nsg.id)
                    late = drift(Plan(plan.nsg_id, plan.nsg_name, (action,)), nsg, again.nsg) if again else ["gone"]
                    if late:
                        failure = WriteFailed(f"{action.name} changed between read and write: {late}", FAIL_CONFLICT)
                        outcome.records.append(RemediationRecord(
                            nsg, MODE_ENFORCE, RESULT_SKIPPED, attempt, seq, action=action,
                            details={"reason": action.reason, "outcome": "re-planned: changed between read and "
                                     "write", "changed": late}))
                        break
                try:
                    apply_action(self.writer, nsg.id, action)
                except WriteFailed as exc:
                    failure = exc
                    # A priority clash with a concurrent writer is re-planned while attempts are left.
                    replanning = exc.kind == FAIL_CONFLICT and attempt < self.config.max_attempts
                    outcome.records.append(RemediationRecord(
                        nsg, MODE_ENFORCE, RESULT_SKIPPED if replanning else RESULT_FAILED, attempt, seq,
                        action=action,
                        details={"reason": action.reason, "error": exc.to_json(),
                                 "outcome": "re-planned after a concurrent change" if replanning else "failed",
                                 "notApplied": [a.name for a in plan.actions[seq + 1:]]}))
                    break
                written.append((seq, action))
            after = self._reread(nsg.id) if written or (failure and failure.kind == FAIL_CONFLICT) else current
            if after is None:  # the NSG is gone
                outcome.records += [self._record(nsg, a, seq, attempt, RESULT_APPLIED,
                                                 {"outcome": "nsg-deleted"}) for seq, a in written]
                outcome.evaluation = None
                return outcome
            outcome.evaluation = after
            verification = self._verify(after, written, plan)
            replan = self.plan(after, protected)
            reopened = bool(replan.actions)
            if failure is not None and failure.kind != FAIL_CONFLICT:
                outcome.records += [self._record(nsg, a, seq, attempt, RESULT_APPLIED, verification)
                                    for seq, a in written]
                if failure.kind == FAIL_TRANSIENT:
                    outcome.retryable_failure = str(failure)
                break
            if not reopened and failure is None and verification["rulesAsWritten"]:
                outcome.records += [self._record(nsg, a, seq, attempt, RESULT_VERIFIED, verification)
                                    for seq, a in written]
                break
            if attempt >= self.config.max_attempts:
                verification["outcome"] = "reopened" if reopened else verification["outcome"]
                outcome.records += [self._record(nsg, a, seq, attempt, RESULT_APPLIED, verification)
                                    for seq, a in written]
                outcome.records.append(RemediationRecord(
                    after.nsg, MODE_ENFORCE, RESULT_FAILED, attempt, len(plan.actions),
                    details={"reason": f"port(s) still exposed after {attempt} attempt(s): concurrent changes "
                                       "keep reopening them", "verification": verification,
                             "findingIds": [f.finding_id for f in self.config.scope.targets(after.findings)]}))
                break
            verification["outcome"] = "re-planned after a concurrent change"
            outcome.records += [self._record(nsg, a, seq, attempt, RESULT_APPLIED, verification)
                                for seq, a in written]
            attempt += 1
            current, plan = after, replan
        return outcome

    def _record(self, nsg: Nsg, action: Action, seq: int, attempt: int, result: str,
                verification: dict[str, Any]) -> RemediationRecord:
        return RemediationRecord(nsg, MODE_ENFORCE, result, attempt, seq, action=action,
                                 details={"reason": action.reason, "verification": dict(verification)})

    def _reread(self, nsg_id: str) -> NsgEvaluation | None:
        try:
            return self.evaluate(self.reader.get_nsg(nsg_id))
        except NsgNotFound:
            return None

    def _verify(self, after: NsgEvaluation, written: list[tuple[int, Action]], plan: Plan) -> dict[str, Any]:
        """Did the rules land as written, and are the targets gone (by the same engine)?"""
        mismatched = []
        for _, action in written:
            now = next((r for r in after.nsg.rules if r.name.lower() == action.name.lower()), None)
            if action.op == OP_DELETE:
                if now is not None:
                    mismatched.append(action.name)
            elif now is None or not same_rule(now.to_arm(), action.rule, after.nsg.id):
                mismatched.append(action.name)
        planned = {f.finding_id for f in plan.targets}
        still = sorted({f.finding_id for f in self.config.scope.targets(after.findings)} & planned)
        unplannable = {s.rule_name.lower() for s in plan.skipped if s.code == SKIP_NO_SAFE_CHANGE}
        return {"etag": after.nsg.etag, "rulesAsWritten": not mismatched, "mismatched": mismatched,
                "stillExposed": still, "outcome": "clean" if not still and not mismatched else "reopened",
                "unplannable": sorted(unplannable), "checkedAt": self.clock().isoformat()}
