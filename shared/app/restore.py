"""Undo NSG Guard's writes from its audit records (``RecordType == "remediation"`` rows).

Each applied/verified row carries the NSG id, the rule as it was (``RuleBefore``, null when we created it) and
as we wrote it (``RuleAfter``, null when we deleted it). Undo runs the rows newest first (``shift`` wrote two
rules: the deny rule is removed before the moved rule goes back) and, per row:

- we created the rule (``RuleBefore`` null)      -> DELETE it;
- we changed or deleted a rule                   -> PUT ``RuleBefore`` back.

Safety: a step runs only while the rule still reads exactly as we left it (``RuleAfter``, or absent after a
delete). If someone changed it since, the step is skipped as a conflict unless ``force`` is set. ``dry_run``
reads and checks but writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.core.errors import InputError, NsgGuardError
from shared.core.model import Nsg, same_rule

WRITTEN = ("applied", "verified")
STEP_PLANNED, STEP_DONE, STEP_CONFLICT, STEP_FAILED, STEP_NOTHING = (
    "planned", "done", "conflict", "failed", "nothing-to-do")


class RuleStore(Protocol):
    def get_nsg(self, nsg_id: str) -> Nsg: ...
    def put_rule(self, nsg_id: str, body: dict[str, Any]) -> None: ...
    def delete_rule(self, nsg_id: str, name: str) -> None: ...


@dataclass
class RestoreStep:
    nsg_id: str
    op: str  # put | delete
    rule_name: str
    body: dict[str, Any] | None  # PUT body (the original rule), None for delete
    expect: dict[str, Any] | None  # the rule as NSG Guard left it; None = NSG Guard deleted it
    row_id: str | None
    reason: str
    status: str = STEP_PLANNED
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"nsgId": self.nsg_id, "op": self.op, "rule": self.body if self.op == "put" else
                {"name": self.rule_name}, "reason": self.reason, "status": self.status, "message": self.message,
                "rowId": self.row_id, "diff": self.diff()}

    def diff(self) -> dict[str, Any]:
        """What the step changes: property -> [now (as NSG Guard left it), after restore]."""
        now = (self.expect or {}).get("properties") or {}
        then = (self.body or {}).get("properties") or {}
        return {k: [now.get(k), then.get(k)] for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)}


def _dynamic(value: Any) -> Any:
    """Log Analytics exports dynamic columns as JSON text; the ingestion stand-in keeps objects."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "null"):
            return None
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"a dynamic column holds invalid JSON: {exc.msg}") from None
    return value


def _rule_body(value: Any, row_id: str, column: str) -> dict[str, Any] | None:
    """RuleBefore/RuleAfter as written by NSG Guard (``name`` + ``properties``), or InputError for that row."""
    body = _dynamic(value)
    if body is None:
        return None
    if not isinstance(body, Mapping) or not isinstance(body.get("name"), str) or not body["name"] \
            or not isinstance(body.get("properties"), Mapping):
        raise InputError(f"remediation row {row_id}: {column} is not a rule body with a 'name' and 'properties'")
    return dict(body)


def _order_number(details: Any, key: str) -> int:
    value = details.get(key, 0) if isinstance(details, Mapping) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def plan_restore(records: Iterable[Mapping[str, Any]], *, row_ids: Iterable[str] = (),
                 nsg_id: str | None = None) -> list[RestoreStep]:
    """The undo steps for the written remediation rows among ``records``, newest first."""
    wanted = {r.lower() for r in row_ids}
    rows: dict[str, Mapping[str, Any]] = {}
    for i, r in enumerate(records):
        if r.get("RecordType") != "remediation" or not isinstance(r.get("Result"), str) or r["Result"] not in WRITTEN:
            continue
        if r.get("Action") not in ("put", "delete"):
            continue
        if wanted and str(r.get("RowId", "")).lower() not in wanted:
            continue
        if nsg_id and str(r.get("NsgId", "")).lower() != nsg_id.lower():
            continue
        rows.setdefault(str(r.get("RowId") or f"#{i}"), r)  # a retried upload repeats a row: once is enough

    def order(r: Mapping[str, Any]) -> tuple[str, int, int]:
        try:
            d = _dynamic(r.get("Details"))
        except ValueError:
            d = None  # Details not JSON: ordering falls back to the time (_order_number reads 0)
        return (str(r.get("TimeGenerated", "")), _order_number(d, "attempt"), _order_number(d, "sequence"))

    steps = []
    for row_id, r in sorted(rows.items(), key=lambda kv: order(kv[1]), reverse=True):
        steps.append(_step(row_id, r))
    return steps


def _body(value: Any, what: str, row_id: str) -> dict[str, Any] | None:
    """A rule body from a row field, or an InputError naming the row (cut at 64 KB, not an object...)."""
    try:
        value = _dynamic(value)
    except ValueError:
        raise InputError(f"remediation row {row_id}: {what} is not valid JSON (cut at 64 KB?)") from None
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or \
            not isinstance(value.get("properties"), dict):
        raise InputError(f"remediation row {row_id}: {what} is not a rule body with name and properties")
    return value


def _details(r: Mapping[str, Any]) -> dict[str, Any]:
    try:
        d = _dynamic(r.get("Details"))
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _step(row_id: str, r: Mapping[str, Any]) -> RestoreStep:
    """Undo only what NSG Guard did: delete only our own rules (prefix), put back only the rule it changed."""
    from shared.core.remediation import OWN_PREFIX

    before, after = _body(r.get("RuleBefore"), "RuleBefore", row_id), _body(r.get("RuleAfter"), "RuleAfter", row_id)
    nsg = r.get("NsgId")
    if not isinstance(nsg, str) or not (before or after):
        raise InputError(f"remediation row {row_id} has no NsgId or no RuleBefore/RuleAfter")
    if before is None:
        assert after is not None
        if not after["name"].lower().startswith(OWN_PREFIX):
            raise InputError(f"remediation row {row_id}: RuleAfter {after['name']!r} is not an NSG Guard rule; "
                             "restore only deletes rules NSG Guard created")
        return RestoreStep(nsg, "delete", after["name"], None, after, row_id,
                           f"remove {after['name']}, created by NSG Guard")
    if after is not None and after["name"].lower() != before["name"].lower():
        raise InputError(f"remediation row {row_id}: RuleBefore names {before['name']!r} but RuleAfter names "
                         f"{after['name']!r}; restore only puts back the rule that was changed")
    if after is None:
        if str(r.get("Action")) != "delete":
            raise InputError(f"remediation row {row_id}: RuleAfter is empty but Action is not delete")
        details = _details(r)
        own = before["name"].lower().startswith(OWN_PREFIX)
        narrowed = before["name"].lower() == str(r.get("RuleName", "")).lower() and \
            details.get("strategy") in ("narrow-ports", "narrow-sources")
        if not (own or narrowed):
            raise InputError(f"remediation row {row_id}: NSG Guard never deletes {before['name']!r} that way "
                             "(only its own rules, or the rule an opt-in narrowing emptied); not restored")
    what = "deleted" if after is None else "changed"
    return RestoreStep(nsg, "put", before["name"], {"name": before["name"], "properties": before["properties"]},
                       after, row_id, f"put back {before['name']} as it was before NSG Guard {what} it")


def restore(steps: list[RestoreStep], store: RuleStore, *, dry_run: bool = False, force: bool = False
            ) -> list[RestoreStep]:
    """Run (or, with ``dry_run``, only check) the steps in order; each step's status says what happened."""
    for step in steps:
        try:
            nsg = store.get_nsg(step.nsg_id)
        except NsgGuardError as exc:
            step.status, step.message = STEP_FAILED, f"cannot read the NSG: {exc}"
            continue
        current = next((r for r in nsg.rules if r.name.lower() == step.rule_name.lower()), None)
        now = None if current is None else {"name": current.name, "properties": current.to_arm()["properties"]}
        if step.op == "delete" and now is None:
            step.status, step.message = STEP_NOTHING, "already gone"
            continue
        if step.op == "put" and now is not None and step.body is not None and same_rule(now, step.body, nsg.id):
            step.status, step.message = STEP_NOTHING, "already as it was"
            continue
        unchanged = (now is None) if step.expect is None else (now is not None and same_rule(now, step.expect, nsg.id))
        if not unchanged and not force:
            step.status = STEP_CONFLICT
            step.message = ("changed since NSG Guard wrote it; not touched (use --force to restore anyway)")
            continue
        if dry_run:
            step.status, step.message = STEP_PLANNED, "dry run: nothing written"
            continue
        try:
            if step.op == "delete":
                store.delete_rule(step.nsg_id, step.rule_name)
            else:
                assert step.body is not None
                store.put_rule(step.nsg_id, step.body)
        except NsgGuardError as exc:
            step.status, step.message = STEP_FAILED, str(exc)
            continue
        step.status, step.message = STEP_DONE, "restored"
    return steps
