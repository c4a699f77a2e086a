"""Issue 10 regressions through the real entry points: Event Grid's 30 s window (the stand-in redelivers),
18 concurrent events, lost updates, lost audit, stale denies and scope — real SDK clients, Azurite queue."""

from __future__ import annotations

import threading

import pytest

from localazure.eventgrid import deliver_with_timeout
from localazure.functions import function
from shared.errors import TransientError
from tests.azurite import azurite  # noqa: F401
from tests.azurite_queue import azurite_queue_port, azurite_storage  # noqa: F401
from tests.eventfactory import event_dict, function_event
from tests.integration.test_revert import NSG, NSG_ID, done, live_rules, open_ids, ours, revert, seed  # noqa: F401
from tests.nsgfactory import rule


def test_slow_writes_never_run_inside_the_event_grid_delivery(revert):  # noqa: F811
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.put", latency_ms=4000, times=None)  # a slow long-running write
    event = function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH")
    stats = deliver_with_timeout(event, function("on_nsg_change"), timeout_s=3.0)  # Azure: 30 s
    assert stats == {"attempts": 1, "timeouts": 0, "errors": 0, "ok": 1}  # answered in time: no redelivery
    assert guard.azure.count("arm.put") == 0  # nothing written inside the delivery
    guard.run_jobs()
    assert guard.azure.count("arm.put") == 1 and open_ids(guard) == []


def test_eighteen_concurrent_events_make_one_put(revert):  # noqa: F811
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    events = [function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH") for _ in range(18)]
    threads = [threading.Thread(target=function("on_nsg_change"), args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run = guard.run_jobs(workers=4)
    assert run.done + run.poisoned >= 1 and run.poisoned == 0
    assert guard.azure.count("arm.put") == 1 and len(ours(guard)) == 1


def test_user_edit_between_read_and_write_is_never_overwritten(revert):  # noqa: F811
    guard = revert("enforce", REVERT_STRATEGIES="insert-deny,narrow,shift")
    seed(guard, [rule("AllowWebSSH", 100, ["22", "443"], "Internet", nsg=NSG)])  # narrowing is the only way

    def user_adds_8080(azure, req):  # lands after our planning read, before our write
        def edit(body):
            for r in body["properties"]["securityRules"]:
                if r["name"] == "AllowWebSSH":
                    r["properties"].pop("destinationPortRanges", None)
                    r["properties"]["destinationPortRanges"] = ["22", "443", "8080"]
        azure.update_nsg(NSG_ID, edit)

    guard.azure.faults.add("arm.get", before=user_adds_8080, times=1,
                           match=lambda req: req.rule_name is None and guard.azure.count("arm.get") >= 3)
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowWebSSH"))
    ports = live_rules(guard)["AllowWebSSH"].get("destinationPortRanges") or [
        live_rules(guard)["AllowWebSSH"].get("destinationPortRange")]
    assert "8080" in ports and "443" in ports  # the user's edit survived


def test_rows_are_recorded_before_any_write(revert):  # noqa: F811
    guard = revert("enforce", OUTBOX_CONTAINER="Not_A_Container")  # the outbox fails as well
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("ingest", status=503, times=None, retry_after=0.01)  # ingestion fails
    with pytest.raises(TransientError):
        function("on_nsg_change")(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    guard.run_jobs()
    assert guard.azure.count("arm.put") == 0 and ours(guard) == {}  # nothing written, nothing unrecorded
    guard.azure.faults.reset()
    import os
    os.environ["OUTBOX_CONTAINER"] = "outbox-ok"
    from shared.azure.wiring import event_deps, job_deps
    event_deps.cache_clear()
    job_deps.cache_clear()
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH", upn="mallory@contoso.example"))
    (finding,) = [r for r in guard.rows(RecordType="finding") if r["Status"] == "Open"]
    assert finding["Actor"] == "mallory@contoso.example" and len(ours(guard)) == 1
    results = [r["Result"] for r in guard.rows(RecordType="remediation")]
    assert results == ["planned", "verified"]


def test_stale_deny_is_removed_when_the_owner_fixes_the_rule(revert):  # noqa: F811
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    (deny_name,) = ours(guard)

    def narrow(body):
        for r in body["properties"]["securityRules"]:
            if r["name"] == "AllowSSH":
                r["properties"]["sourceAddressPrefix"] = "203.0.113.7"
    guard.azure.update_nsg(NSG_ID, narrow)
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert ours(guard) == {} and live_rules(guard)["AllowSSH"]["sourceAddressPrefix"] == "203.0.113.7"
    gc = [r for r in done(guard.rows(RecordType="remediation")) if r["Action"] == "delete"]
    assert gc and gc[-1]["Details"]["strategy"] == "remove-stale-deny" and gc[-1]["RuleBefore"]["name"] == deny_name


def test_event_outside_the_configured_subscriptions_is_not_reverted(revert):  # noqa: F811
    guard = revert("enforce", SWEEP_SUBSCRIPTIONS="11111111-1111-4111-8111-111111111111")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.deliver(event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.count("arm.put") == 0 and guard.azure.count("arm.get") == 0
