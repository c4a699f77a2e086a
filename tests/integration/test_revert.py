"""Auto-revert end to end: real func.EventGridEvent -> on_nsg_change -> real azure-mgmt-network (reads and
rule writes, long-running operations) and azure-monitor-ingestion -> the local stand-ins. No SDK method is
patched; faults come from the stand-ins, settings from environment variables."""

from __future__ import annotations

import json

import pytest

from shared.azure.rulestore import restore_from_file
from tests.azurite import azurite  # noqa: F401
from tests.azurite_queue import AzuriteStorage, azurite_queue_port, azurite_storage, unique  # noqa: F401
from tests.eventfactory import event_dict, function_event
from tests.exemptionfactory import expired_exemption, seed_exemption
from tests.integration.conftest import Guard
from tests.nsgfactory import nsg, nsg_id, rule

RG = "rg1"
NSG = "ci-gpu-01-nsg"
NSG_ID = nsg_id(NSG, RG)
AML = [rule("AzureMachineLearning", 100, "44224", "AzureMachineLearning", nsg=NSG),
       rule("BatchNodeManagement", 110, "29876-29877", "BatchNodeManagement", nsg=NSG)]
BASTION = rule("AllowBastionSSH", 200, "22", "10.0.250.0/26", nsg=NSG)


class QueueGuard(Guard):
    """The function app with its revert queue on Azurite: every delivery is followed by the queue trigger,
    as the Functions host would run it (dequeue counts, retries, poison queue)."""

    storage: AzuriteStorage | None = None

    def deliver(self, event):
        result = super().deliver(event)
        self.run_jobs()
        return result

    def run_jobs(self, workers: int = 1):
        from localazure.functions import function
        from localazure.queuehost import drain

        assert self.storage is not None
        return drain(self.storage.connection_string, "nsg-guard-revert", function("revert_job"), workers=workers)


@pytest.fixture
def revert(guard: Guard, monkeypatch: pytest.MonkeyPatch, azurite_storage: AzuriteStorage):  # noqa: F811
    """Switch the function's REVERT_MODE (and any other setting) for this test; the revert queue and the
    NSG locks live in Azurite."""
    from shared.azure.wiring import event_deps, job_deps

    def configure(mode: str = "enforce", **env: str) -> QueueGuard:
        monkeypatch.setenv("REVERT_MODE", mode)
        monkeypatch.setenv("NSG_GUARD_STORAGE_CONNECTION_STRING", azurite_storage.connection_string)
        monkeypatch.setenv("REVERT_LOCK_CONTAINER", unique("locks"))
        monkeypatch.setenv("OUTBOX_CONTAINER", unique("outbox"))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        event_deps.cache_clear()
        job_deps.cache_clear()
        q = QueueGuard(guard.azure)
        q.storage = azurite_storage
        return q

    yield configure
    job_deps.cache_clear()


def done(rows: list) -> list:
    """Remediation rows without the write-ahead ``planned`` rows of enforce mode."""
    return [r for r in rows if not r["Details"].get("writeAhead") and not r["Details"].get("reconstructed")]


def seed(guard: Guard, rules: list, tags: dict | None = None) -> None:
    guard.azure.seed_nsg(nsg(rules, name=NSG, tags={"owner": "ml-platform@contoso.example", **(tags or {})}))


def deliver(guard: Guard, rule_name: str | None = "AllowSSH", **kw) -> None:
    sample = "eventgrid-rule-write.json" if rule_name else "eventgrid-nsg-write.json"
    guard.deliver(function_event(sample, NSG_ID, rule_name, **kw))


def live_rules(guard: Guard) -> dict[str, dict]:
    return {r["name"]: r["properties"] for r in guard.azure.get_nsg(NSG_ID)["properties"]["securityRules"]}


def ours(guard: Guard) -> dict[str, dict]:
    return {k: v for k, v in live_rules(guard).items() if k.startswith("nsg-guard-")}


def open_ids(guard: Guard) -> list:
    return guard.rows(RecordType="evaluation")[-1]["OpenFindingIds"]


def test_off_mode_records_findings_and_writes_nothing(revert):
    guard = revert("off")
    seed(guard, [*AML, rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    deliver(guard)
    assert guard.azure.count("arm.put") == 0 and done(guard.rows(RecordType="remediation")) == []
    assert guard.rows(RecordType="finding")[0]["Status"] == "Open"


def test_dry_run_records_the_exact_rule_and_writes_nothing(revert):
    guard = revert("dry-run")
    seed(guard, [*AML, BASTION, rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    deliver(guard)
    assert guard.azure.count("arm.put") == 0 and guard.azure.count("arm.delete") == 0
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Mode"], row["Result"], row["Action"], row["RuleName"]) == ("dry-run", "planned", "put", "AllowSSH")
    assert row["RuleBefore"] is None
    props = row["RuleAfter"]["properties"]
    assert (props["access"], props["priority"], props["sourceAddressPrefix"], props["destinationPortRange"],
            props["protocol"]) == ("Deny", 299, "Internet", "22", "Tcp")
    assert row["FindingId"] == guard.rows(RecordType="finding")[0]["FindingId"] and open_ids(guard)


def test_enforce_inserts_a_deny_verifies_and_own_write_event_is_clean(revert):
    guard = revert("enforce")
    seed(guard, [*AML, BASTION, rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    deliver(guard, upn="mallory@contoso.example")
    (deny_name, deny), = ours(guard).items()
    assert deny_name.startswith("nsg-guard-deny-22-") and (deny["priority"], deny["access"]) == (299, "Deny")
    assert live_rules(guard)["AllowSSH"]["sourceAddressPrefix"] == "*"  # the offending rule is untouched
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Mode"], row["Result"], row["Actor"]) == ("enforce", "verified", "mallory@contoso.example")
    assert row["Details"]["verification"]["outcome"] == "clean" and row["Details"]["verification"]["rulesAsWritten"]
    assert row["EventId"] and row["RuleAfter"]["name"] == deny_name
    evaluation = guard.rows(RecordType="evaluation")[-1]
    assert evaluation["OpenFindingIds"] == [] and evaluation["Details"]["remediated"] is True
    assert evaluation["TimeGenerated"] > guard.rows(RecordType="finding")[0]["TimeGenerated"]  # MTTR resolution

    # Our own write comes back as an event (actor: the app's identity): it evaluates clean, plans nothing.
    guard.azure.reset()
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, deny_name))
    assert guard.azure.count("arm.put") == 0 and guard.azure.count("arm.get") == 1
    (latent,) = [r for r in guard.rows(RecordType="finding") if r["EventId"] != row["EventId"]]
    assert (latent["Status"], latent["Active"]) == ("Latent", False) and deny_name in latent["Reason"]
    assert guard.rows(RecordType="evaluation")[-1]["Result"] == "compliant"
    assert len(done(guard.rows(RecordType="remediation"))) == 1


def test_redelivered_event_does_not_create_a_second_deny_rule(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    event = event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH", event_id="evt-1")
    guard.deliver(event)
    puts = guard.azure.count("arm.put")
    guard.deliver(event)
    assert guard.azure.count("arm.put") == puts == 1 and len(ours(guard)) == 1


@pytest.mark.parametrize(("rules", "strategy", "check"), [
    ([rule("AllowWebAndSSH", 100, ["22", "443"], "Internet", nsg=NSG),
      rule("AllowVpn", 101, "22", "198.51.100.7", nsg=NSG)], "narrow-ports",
     lambda rules: rules["AllowWebAndSSH"]["destinationPortRange"] == "443"
     and rules["AllowVpn"]["sourceAddressPrefix"] == "198.51.100.7"),
    ([rule("AllowSSH", 100, "22", "0.0.0.0/0", nsg=NSG), rule("DenyWeb", 101, "80", "*", access="Deny", nsg=NSG)],
     "narrow-sources",
     lambda rules: {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(rules["AllowSSH"]["sourceAddressPrefixes"])
     and not any(p.startswith(("52.", "8.")) for p in rules["AllowSSH"]["sourceAddressPrefixes"])),
    ([rule("AllowSSH", 100, "22", "Internet", nsg=NSG), rule("DenyWeb", 101, "80", "*", access="Deny", nsg=NSG)],
     "narrow-ports", lambda rules: "AllowSSH" not in rules),
])
def test_priority_100_without_room_narrows_the_rule_itself(revert, rules, strategy, check):
    guard = revert("enforce", REVERT_STRATEGIES="insert-deny,narrow,shift")  # opt-in: changes the user's rule
    seed(guard, rules)
    deliver(guard)
    assert ours(guard) == {} and check(live_rules(guard))
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Details"]["strategy"], row["Result"]) == (strategy, "verified") and open_ids(guard) == []


def test_no_safe_change_is_recorded_and_the_finding_stays_open(revert):
    guard = revert("enforce")
    # 100 and 101 both taken, '*' sources: no insert, no exact narrowing, no room to shift.
    seed(guard, [rule("AllowAnySSH", 100, "22", "*", nsg=NSG), rule("DenyWeb", 101, "80", "*", access="Deny", nsg=NSG)])
    deliver(guard, "AllowAnySSH")
    assert guard.azure.count("arm.put") == 0
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Result"], row["Details"]["skipCode"]) == ("skipped", "no-safe-change")
    assert "no free priority" in row["Details"]["reason"] and open_ids(guard)


def test_star_rule_at_100_is_shifted_by_one_and_denied(revert):
    guard = revert("enforce", REVERT_STRATEGIES="insert-deny,narrow,shift")
    seed(guard, [rule("AllowAnySSH", 100, "22", "*", nsg=NSG)])
    deliver(guard, "AllowAnySSH")
    rules = live_rules(guard)
    (deny,) = ours(guard).values()
    assert rules["AllowAnySSH"]["priority"] == 101 and rules["AllowAnySSH"]["sourceAddressPrefix"] == "*"
    assert (deny["priority"], deny["sourceAddressPrefix"]) == (100, "Internet") and open_ids(guard) == []


def test_exempt_rule_is_not_changed_and_recorded_as_exempt(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    seed_exemption(guard.azure, NSG_ID, ["AllowSSH"], ticket="CHG-1234")  # a Policy exemption: an approval
    deliver(guard)
    assert guard.azure.count("arm.put") == 0 and done(guard.rows(RecordType="remediation")) == []
    (finding,) = guard.rows(RecordType="finding")
    assert finding["Status"] == "Exempt" and finding["Details"]["exemption"]["ticket"] == "CHG-1234"
    assert open_ids(guard) == []


def test_expired_exemption_is_reverted(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    expired_exemption(guard.azure, NSG_ID, ["AllowSSH"], ticket="CHG-1")
    deliver(guard)
    assert len(ours(guard)) == 1
    (finding,) = guard.rows(RecordType="finding")
    (lapsed,) = finding["Details"]["exemptionNotApplied"]
    assert finding["Status"] == "Open" and (lapsed["code"], lapsed["ticket"]) == ("expired", "CHG-1")
    assert done(guard.rows(RecordType="remediation"))[0]["Result"] == "verified"


def test_malformed_exemption_tag_is_a_finding_and_does_not_exempt(revert):
    guard = revert("dry-run")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)], {"nsg-guard-exempt": "rules=AllowSSH; forever"})
    deliver(guard)
    findings = {r["RuleName"]: r for r in guard.rows(RecordType="finding")}
    assert findings["AllowSSH"]["Status"] == "Open"
    tag = findings["tag:nsg-guard-exempt"]
    assert tag["PortKind"] == "exemption-tag" and "malformed" in tag["Reason"] and tag["Severity"] == "low"
    assert done(guard.rows(RecordType="remediation"))[0]["Result"] == "planned"


def test_jit_rules_are_never_touched(revert):
    # JIT by identity: the JIT service (its object id in JIT_PRINCIPAL_IDS) wrote the rule.
    guard = revert("enforce", JIT_PRINCIPAL_IDS="00000000-0000-0000-0000-0000000000a1")
    seed(guard, [rule("SecurityCenter-JITRule-123456-ABCDEF", 100, "22", "*", nsg=NSG),
                 rule("SecurityCenter-JITRule-123456-DENY", 4096, "22", "*", access="Deny", nsg=NSG)])
    event = event_dict("eventgrid-rule-write.json", NSG_ID, "SecurityCenter-JITRule-123456-ABCDEF")
    event["data"]["claims"]["http://schemas.microsoft.com/identity/claims/objectidentifier"] = \
        "00000000-0000-0000-0000-0000000000a1"
    guard.deliver(event)
    assert guard.azure.count("arm.put") == 0 and guard.azure.count("arm.delete") == 0
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Result"], row["Action"], row["Details"]["skipCode"]) == ("skipped", "skip", "jit-rule")


def test_rule_named_like_jit_is_reverted_when_anyone_else_opens_it_to_the_internet(revert):
    guard = revert("enforce")
    seed(guard, [rule("SecurityCenter-JITRule-123456-ABCDEF", 300, "22", "*", nsg=NSG)])
    deliver(guard, "SecurityCenter-JITRule-123456-ABCDEF", upn="mallory@contoso.example")
    assert len(ours(guard)) == 1 and open_ids(guard) == []


def test_concurrent_edit_between_read_and_write_is_replanned(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])

    def someone_else(azure, req):  # lands just before our PUT is applied
        azure.update_nsg(NSG_ID, lambda body: body["properties"]["securityRules"].append(
            rule("AllowSSH2", 250, "22", "Internet", nsg=NSG)))

    guard.azure.faults.changed_under_you(someone_else, kind="arm.put")
    deliver(guard)
    assert len(ours(guard)) == 2
    rows = done(guard.rows(RecordType="remediation"))
    assert [(r["Result"], r["Details"]["attempt"], r["RuleName"]) for r in rows] == [
        ("applied", 1, "AllowSSH"), ("verified", 2, "AllowSSH2")]
    assert rows[0]["Details"]["verification"]["outcome"] == "re-planned after a concurrent change"
    assert open_ids(guard) == []


def test_concurrent_edit_taking_our_priority_is_replanned(revert):
    guard = revert("enforce", REVERT_STRATEGIES="insert-deny,narrow,shift")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])

    def take_299(azure, req):
        azure.update_nsg(NSG_ID, lambda body: body["properties"]["securityRules"].append(
            rule("AllowOffice", 299, "443", "203.0.113.0/24", nsg=NSG)))

    guard.azure.faults.changed_under_you(take_299, kind="arm.put")
    deliver(guard)
    (deny,) = ours(guard).values()  # 299 is gone now: the re-plan denies at 298 (AllowOffice, 443, is unaffected)
    assert deny["priority"] == 298 and live_rules(guard)["AllowSSH"]["priority"] == 300
    results = [(r["Result"], r["Details"]["attempt"]) for r in done(guard.rows(RecordType="remediation"))]
    assert results == [("skipped", 1), ("verified", 2)]
    assert open_ids(guard) == []


def test_throttled_put_is_retried_by_the_sdk(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.put", status=429, times=2, retry_after=0.01,
                           code="RetryableErrorDueToAnotherOperation")
    deliver(guard)
    assert guard.azure.count("arm.put", status=429) == 2 and len(ours(guard)) == 1
    assert done(guard.rows(RecordType="remediation"))[0]["Result"] == "verified"


def test_permanent_put_failure_is_recorded_and_the_finding_stays_open(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.put", status=403, times=10, code="AuthorizationFailed",
                           message="The client does not have authorization to perform action "
                                   "'Microsoft.Network/networkSecurityGroups/securityRules/write'.")
    assert deliver(guard) is None  # acknowledged: no crash, no redelivery
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Result"], row["Details"]["error"]["code"], row["Details"]["error"]["kind"]) == (
        "failed", "AuthorizationFailed", "permanent")
    assert row["RuleAfter"]["properties"]["access"] == "Deny"  # what we tried to write
    assert ours(guard) == {} and open_ids(guard) == [guard.rows(RecordType="finding")[0]["FindingId"]]


def test_failed_long_running_operation_is_recorded(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.network.fail_next_operation("NetworkSecurityGroupRuleLimitReached", "Too many rules.")
    deliver(guard)
    (row,) = done(guard.rows(RecordType="remediation"))
    assert row["Result"] == "failed" and row["Details"]["error"]["code"] == "NetworkSecurityGroupRuleLimitReached"


def test_transient_put_failure_is_recorded_then_retried_from_the_queue(revert):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.put", status=503, times=4, retry_after=0.01)  # one job attempt's SDK retries
    deliver(guard)  # the job fails once (dequeue count 1), the host retries it (2): verified
    rows = guard.rows(RecordType="remediation")
    results = [r["Result"] for r in rows]
    assert results.index("planned") < results.index("failed") < results.index("verified")
    assert len(ours(guard)) == 1 and open_ids(guard) == []


def test_blast_radius_limits_changes_per_run(revert):
    # Two rules need two denies, the limit is 1: one broad deny in front of both closes the internet exactly.
    guard = revert("enforce", REVERT_MAX_CHANGES="1", REVERT_PORT_KINDS="ssh,management")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG), rule("AllowRDP", 400, "3389", "Internet", nsg=NSG)])
    deliver(guard)
    assert guard.azure.count("arm.put") == 1
    (row,) = done(guard.rows(RecordType="remediation"))
    assert (row["Result"], row["Details"]["strategy"]) == ("verified", "broad-deny") and open_ids(guard) == []
    (deny,) = ours(guard).values()
    assert deny["priority"] == 299 and deny["sourceAddressPrefix"] == "Internet"


def test_split_internet_over_the_blast_radius_is_closed_with_one_broad_deny(revert):
    # 16 /4 rules are internet-class together; REVERT_MAX_CHANGES=10 used to leave all 16 open.
    guard = revert("enforce")
    seed(guard, [rule(f"Slice{i:02d}", 300 + 2 * i, "22", f"{16 * i}.0.0.0/4", nsg=NSG) for i in range(16)])
    deliver(guard, "Slice00")
    assert guard.azure.count("arm.put") == 1 and open_ids(guard) == []
    (row,) = done(guard.rows(RecordType="remediation"))
    assert row["Details"]["strategy"] == "broad-deny" and row["Result"] == "verified"


def test_management_ports_only_when_configured(revert):
    guard = revert("enforce", REVERT_PORT_KINDS="ssh,management")
    seed(guard, [rule("AllowRemote", 300, ["22", "3389"], "*", nsg=NSG)])
    deliver(guard, "AllowRemote")
    (name, deny), = ours(guard).items()
    assert name.startswith("nsg-guard-deny-22-3389-") and deny["destinationPortRanges"] == ["22", "3389"]


def test_restore_undoes_the_writes_from_the_audit_file(revert, tmp_path):
    guard = revert("enforce", REVERT_STRATEGIES="insert-deny,narrow,shift")
    original = [rule("AllowSSH", 300, "22", "*", nsg=NSG), rule("AllowAnySSH", 100, "22", "*", nsg=NSG),
                rule("AllowWebAndSSH", 150, ["22", "443"], "Internet", nsg=NSG),
                rule("Blocker", 149, "80", "10.0.0.0/8", access="Deny", nsg=NSG)]
    seed(guard, original)
    before = live_rules(guard)
    deliver(guard)
    assert live_rules(guard) != before and open_ids(guard) == []
    audit = tmp_path / "ingested" / "Custom-NsgGuardFindings.jsonl"
    from shared.azure.wiring import event_deps

    settings = event_deps().reader._settings  # the same local settings the function used
    guard.azure.reset()
    steps = restore_from_file(str(audit), settings=settings, dry_run=True)
    assert {s.status for s in steps} == {"planned"} and guard.azure.count("arm.put") == 0
    steps = restore_from_file(str(audit), settings=settings)
    assert {s.status for s in steps} == {"done"}
    assert live_rules(guard) == before

    again = restore_from_file(str(audit), settings=settings)  # idempotent
    assert {s.status for s in again} == {"nothing-to-do"}


def test_restore_leaves_rules_changed_since_alone(revert, tmp_path):
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    deliver(guard)
    (deny_name,) = ours(guard)

    def edit(body):
        for r in body["properties"]["securityRules"]:
            if r["name"] == deny_name:
                r["properties"]["description"] = "kept by the network team"
    guard.azure.update_nsg(NSG_ID, edit)
    from shared.azure.wiring import event_deps

    settings = event_deps().reader._settings
    audit = str(tmp_path / "ingested" / "Custom-NsgGuardFindings.jsonl")
    (step,) = restore_from_file(audit, settings=settings)
    assert step.status == "conflict" and deny_name in ours(guard)
    (step,) = restore_from_file(audit, settings=settings, force=True)
    assert step.status == "done" and ours(guard) == {}


def test_restore_cli_reads_a_log_analytics_export(revert, tmp_path, monkeypatch, capsys):
    from shared.cli import main

    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    deliver(guard)
    # Log Analytics exports dynamic columns as JSON strings
    export = [{**r, "RuleBefore": json.dumps(r["RuleBefore"]), "RuleAfter": json.dumps(r["RuleAfter"]),
               "Details": json.dumps(r["Details"])} for r in done(guard.rows(RecordType="remediation"))]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    assert main(["restore", "--from", str(path), "--dry-run", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["op"] for s in out["steps"]] == ["delete"] and len(ours(guard)) == 1
    assert main(["restore", "--from", str(path)]) == 0 and ours(guard) == {}


def test_remediate_nsg_helper_for_operators_and_the_demo(revert):
    from shared.azure.remediate import remediate_nsg
    from shared.azure.wiring import event_deps

    guard = revert("off")  # the helper's mode argument wins over REVERT_MODE
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    settings = event_deps().reader._settings
    planned = remediate_nsg(NSG_ID, settings, mode="dry-run")
    assert [r.result for r in planned.records] == ["planned"] and ours(guard) == {}
    done = remediate_nsg(NSG_ID, settings, mode="enforce")
    assert [r.result for r in done.records] == ["verified"] and len(ours(guard)) == 1
    assert done.evaluation is not None and done.evaluation.compliant


def test_revert_cannot_end_verified_while_22_stays_open_behind_a_source_port_limited_deny(revert):
    """Issue 9: a deny copied from an Allow limited to client ports 1024-65535 leaves 0-1023 reaching the later
    Allow. The verification (the engine, on the NSG as re-read) must see that: 22 ends closed for every port."""
    from shared.core.model import parse_nsg
    from shared.core.policy import Engine

    guard = revert("enforce")
    first = rule("AllowSSH", 300, "22", "*", nsg=NSG)
    first["properties"]["sourcePortRange"] = "1024-65535"
    seed(guard, [*AML, first, rule("AllowSSHLater", 400, "22", "*", nsg=NSG)])
    deliver(guard, None)
    results = {r["RuleName"]: r["Result"] for r in guard.rows(RecordType="remediation")}
    assert results == {"AllowSSH": "verified", "AllowSSHLater": "verified"}
    assert open_ids(guard) == []
    live = Engine().evaluate(parse_nsg(guard.azure.get_nsg(NSG_ID), strict=False))
    assert [f.rule.name for f in live.findings if f.active and f.port == 22] == []


def test_revert_job_honours_an_exemption_approved_after_the_event(revert):
    """The job re-reads the approvals with the NSG: an exemption granted while the job waited is honoured."""
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    Guard.deliver(guard, function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))  # queued, not run
    seed_exemption(guard.azure, NSG_ID, ["AllowSSH"], ticket="CHG-7")
    guard.run_jobs()
    assert ours(guard) == {} and guard.azure.count("arm.put") == 0
    assert done(guard.rows(RecordType="remediation")) == []


def test_sweep_sends_a_lapsed_exemption_to_the_revert_queue(revert):
    """Expiry acts through the same queue as events: the sweep writes nothing itself, the job reverts."""
    from shared.app.config import Settings
    from shared.app.sweep import run_sweep
    from shared.azure.wiring import build_sweep_deps

    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    expired_exemption(guard.azure, NSG_ID, ["AllowSSH"])
    run_sweep(build_sweep_deps(Settings.from_env()))
    assert ours(guard) == {} and guard.azure.count("arm.put") == 0
    guard.run_jobs()
    assert len(ours(guard)) == 1
    (row,) = done(guard.rows(RecordType="remediation"))
    assert row["Result"] == "verified" and row["NsgName"] == NSG
