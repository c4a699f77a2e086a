"""Issue 10 regressions through the real entry points: Event Grid's 30 s window (the stand-in redelivers),
18 concurrent events, lost updates, lost audit, stale denies and scope — real SDK clients, Azurite queue."""

from __future__ import annotations

import threading

import pytest

from localazure.eventgrid import deliver_with_timeout
from localazure.functions import function
from shared.core.errors import TransientError
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


def _edit(name, **props):
    def hook(azure, req):
        def change(body):
            rules = body["properties"]["securityRules"]
            if props.get("deleted"):
                rules[:] = [r for r in rules if r["name"] != name]
                return
            for r in rules:
                if r["name"] == name:
                    for key in ("destinationPortRange", "destinationPortRanges", "sourceAddressPrefix",
                                "sourceAddressPrefixes"):
                        if key.rstrip("s") in {k.rstrip("s") for k in props}:
                            r["properties"].pop(key, None)
                    r["properties"].update(props)
        azure.update_nsg(NSG_ID, change)
    return hook


OPT_IN = {"REVERT_STRATEGIES": "insert-deny,narrow,shift"}
LOST_UPDATES = [  # (rules, offending rule, the user's edit, check after the job, strategies)
    pytest.param([rule("AllowWebSSH", 100, ["22", "443"], "Internet", nsg=NSG)], "AllowWebSSH",
                 _edit("AllowWebSSH", destinationPortRanges=["22", "443", "8080"]),
                 lambda rules: "8080" in rules["AllowWebSSH"]["destinationPortRanges"], OPT_IN,
                 id="user-adds-8080-narrowing-would-remove-it"),
    pytest.param([rule("AllowSSH", 100, "22", "Internet", nsg=NSG), rule("DenyWeb", 101, "80", "*", access="Deny",
                                                                         nsg=NSG)], "AllowSSH",
                 _edit("AllowSSH", sourceAddressPrefix="10.0.0.0/8"),
                 lambda rules: rules["AllowSSH"]["sourceAddressPrefix"] == "10.0.0.0/8", OPT_IN,
                 id="user-fixes-to-10/8-narrowing-would-delete-it"),
    pytest.param([rule("AllowAnySSH", 100, "22", "*", nsg=NSG)], "AllowAnySSH", _edit("AllowAnySSH", deleted=True),
                 lambda rules: "AllowAnySSH" not in rules, OPT_IN, id="user-deletes-shift-would-recreate-it"),
    pytest.param([rule("AllowAnySSH", 100, "22", "*", nsg=NSG)], "AllowAnySSH",
                 _edit("AllowAnySSH", sourceAddressPrefix="203.0.113.7"),
                 lambda rules: rules["AllowAnySSH"]["sourceAddressPrefix"] == "203.0.113.7", OPT_IN,
                 id="user-narrows-to-office-shift-would-write-star-back"),
    pytest.param([rule("AllowSSH", 300, "22", "*", nsg=NSG)], "AllowSSH",
                 _edit("AllowSSH", sourceAddressPrefix="203.0.113.7"),
                 lambda rules: rules["AllowSSH"]["sourceAddressPrefix"] == "203.0.113.7"
                 and not any(n.startswith("nsg-guard-") for n in rules), {},
                 id="user-narrows-to-office-default-deny-would-block-it"),
]


@pytest.mark.parametrize(("rules", "offending", "edit", "check", "env"), LOST_UPDATES)
def test_user_edit_between_read_and_write_is_never_overwritten(revert, rules, offending, edit, check, env):  # noqa: F811
    guard = revert("enforce", **env)
    seed(guard, rules)
    # The job's planning read is the NSG's 2nd GET (the event's read is the 1st): the edit lands right after it.
    guard.azure.faults.between_read_and_write(edit, nth_read=2, nsg_id=NSG_ID)
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, offending))
    assert check(live_rules(guard))  # the user's edit survived
    changed = [r for r in guard.rows(RecordType="remediation") if r["Details"].get("changed")]
    assert changed and offending in changed[0]["Details"]["changed"]


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


def test_event_outside_the_configured_management_groups_is_not_reverted(revert):  # noqa: F811
    from tests.nsgfactory import SUB

    guard = revert("enforce", SWEEP_MANAGEMENT_GROUPS="mg-ml")
    guard.azure.graph.management_groups = {"mg-ml": ["11111111-1111-4111-8111-111111111111"]}
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.deliver(event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.count("arm.put") == 0
    guard.azure.graph.management_groups = {"mg-ml": [SUB]}
    from shared.azure.wiring import event_deps, job_deps
    event_deps.cache_clear()
    job_deps.cache_clear()
    guard.deliver(event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.count("arm.put") == 1


def test_result_row_lost_after_the_write_is_rebuilt_from_the_nsg_on_retry(revert):  # noqa: F811
    guard = revert("enforce", OUTBOX_CONTAINER="Not_A_Container")  # nothing can be parked either
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    seen = {"n": 0}

    def after_the_write(req):  # event rows (1st upload) and planned rows (2nd) pass; the result upload fails
        seen["n"] += 1
        return 3 <= seen["n"] <= 6  # the 3rd upload and the SDK's 3 retries

    guard.azure.faults.add("ingest", status=503, times=None, retry_after=0.01, match=after_the_write)
    guard.deliver(event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    (deny_name,) = ours(guard)
    assert guard.azure.count("arm.put") == 1  # written once; the retry writes nothing
    rows = guard.rows(RecordType="remediation")
    assert [r["Result"] for r in rows if not r["Details"].get("reconstructed")] == ["planned"]
    (rebuilt,) = [r for r in rows if r["Details"].get("reconstructed")]
    assert (rebuilt["Result"], rebuilt["RuleAfter"]["name"], rebuilt["RuleBefore"]) == ("applied", deny_name, None)
    assert rebuilt["FindingId"] == rows[0]["FindingId"] and rebuilt["RuleName"] == "AllowSSH"


def test_job_failing_every_time_is_recorded_then_poisoned(revert):  # noqa: F811
    guard = revert("enforce")
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.put", status=503, times=None, retry_after=0.01)
    guard.deliver(event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))  # runs the queue like the host
    poisoned = guard.storage.queue("nsg-guard-revert-poison")
    assert poisoned.get_queue_properties().approximate_message_count == 1
    rows = guard.rows(RecordType="remediation")
    assert [r["Details"]["attempt"] for r in rows if r["Details"].get("poisoned")] == [5]
    assert ours(guard) == {} and open_ids(guard)  # nothing written, the finding stays open and alertable
