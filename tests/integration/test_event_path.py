"""The real-time path end to end: real func.EventGridEvent -> on_nsg_change -> real azure-mgmt-network and
azure-monitor-ingestion clients -> the local stand-ins. No SDK method is patched."""

from __future__ import annotations

import pytest

from shared.core.errors import TransientError
from tests.eventfactory import event_dict, function_event
from tests.integration.conftest import Guard
from tests.nsgfactory import SUB, nsg, nsg_id, rule

RG = "rg1"
NSG = "ci-gpu-01-nsg"
NSG_ID = nsg_id(NSG, RG)
AML = [rule("AzureMachineLearning", 100, "44224", "AzureMachineLearning", nsg=NSG),
       rule("BatchNodeManagement", 110, "29876-29877", "BatchNodeManagement", nsg=NSG)]


def seed(guard: Guard, rules: list, name: str = NSG) -> str:
    return guard.azure.seed_nsg(nsg(rules, name=name, tags={"owner": "ml-platform@contoso.example"}))


def put_rule(guard: Guard, name: str, props: dict) -> None:
    """Change the NSG the way a user would: through the real SDK (long-running PUT)."""
    client = guard.azure.network_client(SUB)
    client.security_rules.begin_create_or_update(RG, NSG, name, {"properties": props}).result()


def ssh_rule_props(source: str = "*", priority: int = 300, access: str = "Allow") -> dict:
    return rule("x", priority, "22", source, access=access)["properties"]


def test_rule_opened_to_internet_gives_high_finding_with_actor(guard: Guard):
    seed(guard, AML)
    put_rule(guard, "AllowSSH", ssh_rule_props("*"))
    guard.azure.reset()
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))

    assert guard.azure.count("arm.get") == 1  # exactly one read of the NSG per event
    (finding,) = guard.rows(RecordType="finding")
    assert (finding["Severity"], finding["Port"], finding["Exposure"], finding["RuleName"]) == \
        ("high", 22, "internet", "AllowSSH")
    assert finding["Actor"] == "ada.okafor@contoso.example" and finding["ActorType"] == "User"
    assert finding["Trigger"] == "event" and finding["CorrelationId"] == "0f4b3a1e-0000-4000-8000-0000000000c1"
    assert finding["Owner"] == "ml-platform@contoso.example" and finding["Status"] == "Open"
    (evaluation,) = guard.rows(RecordType="evaluation")
    assert evaluation["OpenFindingIds"] == [finding["FindingId"]] and evaluation["Result"] == "noncompliant"
    assert evaluation["EventId"] == finding["EventId"]
    assert not any("claims" in str(v) or "eyJ" in str(v) for r in guard.azure.ingested() for v in r.values())


def test_narrowed_rule_resolves_the_finding(guard: Guard):
    seed(guard, [*AML, rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    (opened,) = guard.rows(RecordType="finding")
    put_rule(guard, "AllowSSH", ssh_rule_props("10.0.0.0/8"))
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    evaluations = guard.rows(RecordType="evaluation")
    assert [e["OpenFindingIds"] for e in evaluations] == [[opened["FindingId"]], []]
    assert evaluations[-1]["Result"] == "compliant"
    assert len(guard.rows(RecordType="finding")) == 1


def test_deleting_a_deny_exposes_the_shadowed_allow(guard: Guard):
    seed(guard, [*AML, rule("DenySSHInternet", 200, "22", "Internet", access="Deny", nsg=NSG),
                 rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.deliver(function_event("eventgrid-nsg-write.json", NSG_ID))
    (latent,) = guard.rows(RecordType="finding")
    assert (latent["Active"], latent["Severity"], latent["Status"]) == (False, "info", "Latent")
    assert guard.rows(RecordType="evaluation")[0]["OpenFindingIds"] == []

    guard.azure.network_client(SUB).security_rules.begin_delete(RG, NSG, "DenySSHInternet").result()
    guard.deliver(function_event("eventgrid-rule-delete.json", NSG_ID, "DenySSHInternet"))
    active = guard.rows(RecordType="finding", Active=True)
    assert [(r["RuleName"], r["Severity"], r["FindingId"]) for r in active] == \
        [("AllowSSH", "high", latent["FindingId"])]
    assert guard.rows(RecordType="evaluation")[-1]["OpenFindingIds"] == [latent["FindingId"]]


def test_nsg_deleted_records_resolution_without_reading(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.network_client(SUB).network_security_groups.begin_delete(RG, NSG).result()
    guard.azure.reset()
    event = event_dict("eventgrid-nsg-write.json", NSG_ID)
    event["eventType"] = "Microsoft.Resources.ResourceDeleteSuccess"
    event["data"]["operationName"] = "Microsoft.Network/networkSecurityGroups/delete"
    guard.deliver(event)
    assert guard.azure.count("arm.get") == 0
    (evaluation,) = guard.rows(RecordType="evaluation")
    assert (evaluation["Status"], evaluation["OpenFindingIds"], evaluation["NsgId"]) == ("Deleted", [], NSG_ID)


def test_nsg_gone_between_event_and_read(guard: Guard):
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    (evaluation,) = guard.rows(RecordType="evaluation")
    assert evaluation["Status"] == "Deleted" and "deleted since" in evaluation["Details"]["note"]


def test_arm_throttling_then_success_gives_one_set_of_rows(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.get", status=429, times=2, retry_after=0.01)
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.count("arm.get", status=429) == 2 and guard.azure.count("arm.get", status=200) == 1
    assert len(guard.rows(RecordType="finding")) == 1 and len(guard.rows(RecordType="evaluation")) == 1
    assert guard.azure.count("ingest") == 1


def test_arm_failing_persistently_raises_for_redelivery(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("arm.get", status=503, times=100, retry_after=0.01)
    with pytest.raises(TransientError, match="HTTP 503"):
        guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.ingested() == []


def test_ingestion_failing_persistently_raises_and_writes_nothing(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.azure.faults.add("ingest", status=503, times=100, retry_after=0.01)
    with pytest.raises(TransientError, match="not accepted"):
        guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.ingested() == []
    guard.azure.faults.reset()
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))  # redelivery succeeds
    assert len(guard.rows(RecordType="finding")) == 1


def test_redelivered_event_repeats_meaning_not_invents_it(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG), rule("AllowRDP", 310, "3389", "*", nsg=NSG)])
    event = event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH", event_id="evt-1")
    guard.deliver(event)
    first = sorted((r["RowId"], r.get("FindingId")) for r in guard.azure.ingested())
    guard.deliver(event)
    rows = guard.azure.ingested()
    assert len(rows) == 2 * len(first)
    assert sorted((r["RowId"], r.get("FindingId")) for r in rows[len(first):]) == first


def test_out_of_order_events_always_reflect_the_current_nsg(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "10.0.0.0/8", nsg=NSG)])
    old = function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH")  # stale: describes an older write
    put_rule(guard, "AllowSSH", ssh_rule_props("*"))
    guard.deliver(old)
    assert guard.rows(RecordType="finding")[0]["Exposure"] == "internet"


def test_cloudevents_schema_is_handled_too(guard: Guard):
    seed(guard, [rule("AllowSSH", 300, "22", "*", nsg=NSG)])
    guard.deliver(event_dict("cloudevent-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.rows(RecordType="finding")[0]["Actor"] == "ada.okafor@contoso.example"


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("data"),
    lambda e: e["data"].update(operationName=7),
    lambda e: e["data"].update(resourceUri="/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/vm/z"),
    lambda e: e.update(extraField=1),
])
def test_malformed_events_are_acknowledged_without_reading_or_writing(guard: Guard, mutate):
    event = event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH")
    mutate(event)
    outcome = guard.deliver(event)
    assert outcome is None  # the trigger returns normally: Event Grid does not redeliver poison
    assert guard.azure.count() == 0


def test_unrelated_operations_are_ignored(guard: Guard):
    event = event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH")
    event["data"]["operationName"] = "Microsoft.Network/virtualNetworks/write"
    guard.deliver(event)
    assert guard.azure.count() == 0


def test_invalid_nsg_data_is_recorded_as_an_error_row(guard: Guard):
    bad = nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG)
    bad["properties"]["securityRules"][0]["properties"]["sourceAddressPrefix"] = "10.0.0.0/33"
    guard.azure.seed_nsg(bad)
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    (evaluation,) = guard.rows(RecordType="evaluation")
    assert evaluation["Status"] == "Error" and "invalid address prefix '10.0.0.0/33'" in evaluation["Details"]["error"]


# --- issue 9: the event path cannot be blinded ---------------------------------------------------------------------

def test_event_source_port_limited_deny_does_not_hide_open_ssh(guard: Guard):
    deny = rule("DenyFromPort1", 150, "22", "Internet", access="Deny", nsg=NSG)
    deny["properties"]["sourcePortRange"] = "1"
    seed(guard, [*AML, deny, rule("AllowSSH", 200, "22", "*", nsg=NSG)])
    guard.deliver(function_event("eventgrid-nsg-write.json", NSG_ID))
    assert [(r["RuleName"], r["Exposure"], r["Status"]) for r in guard.rows(RecordType="finding")] == \
        [("AllowSSH", "internet", "Open")]
    assert guard.rows(RecordType="evaluation")[0]["Result"] == "noncompliant"


def test_event_unknown_tag_is_evaluated_and_reported_not_an_error_row(guard: Guard):
    seed(guard, [*AML, rule("AllowNewTag", 150, "22", "AzureBastionNext", nsg=NSG),
                 rule("AllowSSH", 200, "22", "*", nsg=NSG)])
    guard.deliver(function_event("eventgrid-nsg-write.json", NSG_ID))
    findings = sorted((r["RuleName"], r["PortKind"], r["Severity"], r["Status"])
                      for r in guard.rows(RecordType="finding"))
    assert findings == [("AllowNewTag", "unknown-token", "low", "Open"), ("AllowSSH", "ssh", "high", "Open")]
    (evaluation,) = guard.rows(RecordType="evaluation")
    assert evaluation["Status"] == "Evaluated" and len(evaluation["OpenFindingIds"]) == 2
