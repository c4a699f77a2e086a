"""The Azure ML lens's pure core: parsing computes, tying them to NSGs, critical vs latent, owners."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.core.aml import (
    COMPLIANT,
    NONCOMPLIANT,
    NOT_EVALUATED,
    UNKNOWN,
    guards,
    is_aml_required_rule,
    judge,
    parse_compute,
)
from shared.core.errors import InputError
from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, WatchedPort, watched_ports
from tests.nsgfactory import SUB, reference, rule

SUBNET = (f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-ml"
          "/subnets/snet-training")
ENGINE = Engine()


def instance(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(reference("aml-compute-instance.json"))
    inner = body["properties"]["properties"]
    for key, value in changes.items():
        if key == "tags":
            body["tags"] = value
        elif value is None:
            inner.pop(key, None)
        else:
            inner[key] = value
    return body


def cluster(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(reference("aml-compute-cluster.json"))
    body["properties"]["properties"].update(changes)
    return body


def net_nsg(name: str, rules: list[dict[str, Any]], *, subnets: tuple[str, ...] = (SUBNET,), rg: str = "rg-net"):
    nsg_id = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"
    for r in rules:
        r["id"] = f"{nsg_id}/securityRules/{r['name']}"
    return parse_nsg({"id": nsg_id, "name": name, "type": "Microsoft.Network/networkSecurityGroups",
                      "location": "westeurope",
                      "properties": {"securityRules": rules, "subnets": [{"id": s} for s in subnets]}})


def aml_nsg(extra: list[dict[str, Any]] = ()) -> Any:  # type: ignore[assignment]
    """The NSG AML creates for public nodes: 44224 from AzureMachineLearning (+ BatchNodeManagement)."""
    return net_nsg("0f1e2d3c-azurebatch-cloudservicenetworksecuritygroup", [
        rule("AzureMachineLearning", 100, "44224", "AzureMachineLearning"),
        rule("BatchNodeManagement", 110, "29876-29877", "BatchNodeManagement"), *extra], subnets=())


# --- parsing -------------------------------------------------------------------------------------------

def test_parse_reference_instance():
    c = parse_compute(reference("aml-compute-instance.json"))
    assert (c.compute_type, c.name, c.subnet_id, c.public_ip, c.ssh_port) == (
        "ComputeInstance", "ci-ada-gpu", SUBNET, "20.61.12.34", 50000)
    assert c.ssh_public_access and c.has_public_ip and c.ssh_ports == (50000,)
    assert (c.owner, c.owner_source) == ("ada.okafor@contoso.example", "tag")
    assert c.workspace_id.endswith("/workspaces/ws-vision") and c.vm_size == "STANDARD_NC24ADS_A100_V4"


def test_parse_reference_cluster_has_no_owner():
    c = parse_compute(reference("aml-compute-cluster.json"))
    assert (c.compute_type, c.ssh_access, c.owner, c.ssh_ports) == ("AmlCompute", "Enabled", None, (22,))


def test_assigned_user_is_the_owner_when_no_tag_shown_by_name_when_the_creator():
    c = parse_compute(instance(tags={}))
    assert (c.owner, c.owner_source) == ("ada.okafor@contoso.example", "assignedUser")


def test_cluster_nodes_add_their_nat_ports():
    nodes = {"nodes": [{"nodeId": "tvm-1", "publicIpAddress": "20.1.2.3", "port": 50000},
                       {"nodeId": "tvm-2", "publicIpAddress": "20.1.2.3", "port": 50001}]}
    c = parse_compute(reference("aml-compute-cluster.json"), nodes=nodes)
    assert c.ssh_ports == (22, 50000, 50001) and c.shown_public_ip == "20.1.2.3"


@pytest.mark.parametrize("access, subnet, expected", [
    ("Enabled", True, True), ("Disabled", False, False),
    ("NotSpecified", False, True),  # open on public nodes when there is no VNet
    ("NotSpecified", True, False),
])
def test_cluster_remote_login(access: str, subnet: bool, expected: bool):
    body = cluster(remoteLoginPortPublicAccess=access)
    if not subnet:
        body["properties"]["properties"].pop("subnet")
    assert parse_compute(body).ssh_public_access is expected


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.pop("id"), "missing 'id'"),
    (lambda b: b.update(id="/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/x/y"), "not an Azure ML"),
    (lambda b: b["properties"].pop("computeType"), "computeType"),
    (lambda b: b["properties"]["properties"]["sshSettings"].update(sshPort=70000), "not a port number"),
    (lambda b: b["properties"]["properties"]["sshSettings"].update(sshPort=True), "not a port number"),
    (lambda b: b["properties"]["properties"].update(enableNodePublicIp="yes"), "enableNodePublicIp"),
    (lambda b: b["properties"]["properties"].update(subnet="snet"), "'subnet' must be"),
    (lambda b: b.update(properties=[]), "'properties' must be"),
])
def test_malformed_compute_is_an_input_error_naming_it(mutate: Any, message: str):
    body = copy.deepcopy(reference("aml-compute-instance.json"))
    mutate(body)
    with pytest.raises(InputError, match=message):
        parse_compute(body)


def test_unknown_fields_are_tolerated():
    body = instance()
    body["properties"]["properties"]["someNewField2027"] = {"x": 1}
    body["properties"]["futureFlag"] = True
    assert parse_compute(body).ssh_port == 50000


# --- tie-in ----------------------------------------------------------------------------------------------

def test_subnet_nsg_and_aml_managed_nsg_guard_the_compute():
    c = parse_compute(instance())
    assert guards(net_nsg("nsg-training", []), c) == "subnet"
    assert guards(aml_nsg(), c) == "aml-managed"
    other_rg = net_nsg("x-azurebatch-cloudservice-nsg", [], subnets=(), rg="rg-other")
    assert guards(other_rg, c) is None
    assert guards(net_nsg("nsg-elsewhere", [], subnets=(SUBNET + "-2",)), c) is None


def test_aml_required_rule_is_recognised_and_never_a_finding():
    nsg = aml_nsg()
    assert [r.name for r in nsg.rules if is_aml_required_rule(r)] == ["AzureMachineLearning", "BatchNodeManagement"]
    # Even when someone watches 44224 as a management port, a service-tag source is not public.
    engine = Engine(Policy(watched=watched_ports((), (44224, 29876))))
    assert engine.evaluate(nsg).findings == ()
    v = judge(parse_compute(instance(sshSettings={"sshPublicAccess": "Disabled", "sshPort": 50000})),
              ENGINE.evaluator, [nsg])
    assert v.details["nsgPath"][0]["amlRequiredRules"] == ["AzureMachineLearning", "BatchNodeManagement"]
    assert not is_aml_required_rule(parse_nsg({"id": nsg.id, "name": nsg.name, "properties": {"securityRules": [
        {**rule("AzureMachineLearning", 100, "44224-44230", "AzureMachineLearning"), "id": nsg.id + "/x"}]}}).rules[0])


# --- critical vs latent ----------------------------------------------------------------------------------

OPEN_22 = [rule("AllowSSH", 200, "22", "*")]
OPEN_50000 = [rule("AllowCI", 200, "50000", "Internet")]
TRUSTED_50000 = [rule("AllowVPN", 200, "50000", "20.50.1.0/24")]
DENY_ALL = [rule("DenyInternet", 100, "*", "Internet", access="Deny")]


@pytest.mark.parametrize("case, compute, nsgs, status, severity", [
    # public IP + SSH public access + the path admits the internet on the compute's actual sshPort
    ("port 50000 open to Internet", {}, [OPEN_50000], NONCOMPLIANT, "critical"),
    ("22 open but the compute listens on 50000", {}, [OPEN_22], COMPLIANT, None),
    ("sshPort 22 open to *", {"sshSettings": {"sshPublicAccess": "Enabled", "sshPort": 22}}, [OPEN_22],
     NONCOMPLIANT, "critical"),
    ("no VNet: no customer NSG filters", {"subnet": None}, [], NONCOMPLIANT, "critical"),
    ("subnet without NSG lets everything in", {}, [], NONCOMPLIANT, "critical"),
    ("trusted sources on the standard port", {}, [TRUSTED_50000], COMPLIANT, None),
    ("trusted sources on 22 (policy: non-standard port)",
     {"sshSettings": {"sshPublicAccess": "Enabled", "sshPort": 22}},
     [[rule("AllowVPN", 200, "22", "20.50.1.0/24")]], NONCOMPLIANT, "low"),
    ("SSH on 22 behind a compliant NSG: latent risk", {"sshSettings": {"sshPublicAccess": "Enabled", "sshPort": 22}},
     [DENY_ALL + OPEN_22], COMPLIANT, "info"),
    ("SSH public access disabled", {"sshSettings": {"sshPublicAccess": "Disabled", "sshPort": 22}}, [OPEN_22],
     COMPLIANT, None),
    ("no public IP", {"enableNodePublicIp": False, "connectivityEndpoints": {"privateIpAddress": "10.0.0.4"}},
     [OPEN_50000], COMPLIANT, None),
])
def test_critical_vs_latent(case: str, compute: dict[str, Any], nsgs: list[list[dict[str, Any]]], status: str,
                            severity: str | None):
    c = parse_compute(instance(**compute))
    v = judge(c, ENGINE.evaluator, [net_nsg(f"nsg{i}", copy.deepcopy(r)) for i, r in enumerate(nsgs)])
    assert (v.status, v.severity) == (status, severity), (case, v.reason)
    if severity == "critical":
        (f,) = [f for f in v.findings if f.kind != "owner"]
        assert f.open and f.exposure == "internet" and f.port == c.ssh_ports[0] and c.public_ip in f.reason
    if severity == "info":
        (f,) = v.findings
        assert f.status == "Latent" and not f.open and v.open_finding_ids == []


def test_aml_managed_nsg_blocking_closes_the_path():
    """Both hops must allow: the subnet NSG opens 50000, the AML NSG (NIC level) admits only its own rules."""
    c = parse_compute(instance())
    v = judge(c, ENGINE.evaluator, [net_nsg("nsg-training", copy.deepcopy(OPEN_50000)), aml_nsg()],
              aml_nsg_is_its_own=True)
    assert (v.status, v.severity) == (COMPLIANT, None)
    assert {h["role"] for h in v.details["nsgPath"]} == {"subnet", "aml-managed"}
    opened = aml_nsg([rule("AllowCI", 200, "50000", "*")])
    v = judge(c, ENGINE.evaluator, [net_nsg("nsg-training", copy.deepcopy(OPEN_50000)), opened],
              aml_nsg_is_its_own=True)
    assert v.severity == "critical"


def test_an_aml_nsg_that_may_belong_to_another_compute_never_hides_exposure():
    """AML names its NSG by a GUID: with several public computes in the VNet's resource group, trusting
    the wrong one to block would under-report."""
    c = parse_compute(instance())
    v = judge(c, ENGINE.evaluator, [net_nsg("nsg-training", copy.deepcopy(OPEN_50000)), aml_nsg()])
    assert v.severity == "critical"
    assert [h.get("narrows") for h in v.details["nsgPath"] if h["role"] == "aml-managed"] == [False]


def test_cluster_judged_on_node_nat_ports_too():
    nodes = {"nodes": [{"nodeId": "tvm-1", "publicIpAddress": "20.1.2.3", "port": 50001}]}
    c = parse_compute(cluster(), nodes=nodes)
    v = judge(c, ENGINE.evaluator, [net_nsg("nsg-training", [rule("AllowNat", 200, "50000-50100", "*")])])
    assert (v.severity, v.port) == ("critical", 50001)


def test_unknown_when_the_subnet_nsg_was_not_inventoried():
    v = judge(parse_compute(instance()), ENGINE.evaluator, [], subnet_nsg_known=False)
    assert v.status == UNKNOWN


def test_compute_without_owner_is_a_low_finding():
    v = judge(parse_compute(reference("aml-compute-cluster.json")), ENGINE.evaluator,
              [net_nsg("nsg-training", copy.deepcopy(DENY_ALL))])
    owner = [f for f in v.findings if f.kind == "owner"]
    assert len(owner) == 1 and owner[0].severity == "low" and owner[0].open
    assert v.open_finding_ids == [owner[0].finding_id]
    assert v.status == COMPLIANT  # Status answers the port policy (KPI 1); the owner finding stands apart


def test_other_compute_types_are_listed_not_judged():
    body = {"id": reference("aml-compute-instance.json")["id"].replace("ci-ada-gpu", "aks1"), "name": "aks1",
            "properties": {"computeType": "Kubernetes", "properties": None}}
    v = judge(parse_compute(body), ENGINE.evaluator, [])
    assert v.status == NOT_EVALUATED and v.findings == ()


def test_finding_ids_are_stable_per_compute_and_port():
    c = parse_compute(instance())
    a = judge(c, ENGINE.evaluator, [net_nsg("nsg1", copy.deepcopy(OPEN_50000))])
    b = judge(c, Engine(Policy(watched=(WatchedPort(22, "ssh"),))).evaluator,
              [net_nsg("nsg2", copy.deepcopy(OPEN_50000))])
    assert a.open_finding_ids == b.open_finding_ids and len(a.open_finding_ids) == 1


# --- compute events ----------------------------------------------------------------------------------------

def compute_event(operation: str, event_type: str = "Microsoft.Resources.ResourceWriteSuccess",
                  uri: str | None = None) -> dict[str, Any]:
    cid = reference("aml-compute-instance.json")["id"]
    return {"id": "e1", "topic": f"/subscriptions/{SUB}", "subject": uri or cid, "eventType": event_type,
            "eventTime": "2026-11-30T10:00:00.1234567Z", "dataVersion": "2", "metadataVersion": "1",
            "data": {"operationName": operation, "status": "Succeeded", "resourceUri": uri or cid,
                     "claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "ada@contoso.example"}}}


@pytest.mark.parametrize("operation, event_type, kind", [
    ("Microsoft.MachineLearningServices/workspaces/computes/write", "Microsoft.Resources.ResourceWriteSuccess",
     "compute-write"),
    ("microsoft.machinelearningservices/workspaces/computes/delete", "Microsoft.Resources.ResourceDeleteSuccess",
     "compute-delete"),
])
def test_compute_events_are_recognised(operation: str, event_type: str, kind: str):
    from shared.app.events import parse_compute_event

    change = parse_compute_event(compute_event(operation, event_type))
    assert change is not None and (change.kind, change.actor.name, change.subscription_id) == (
        kind, "ada@contoso.example", SUB)


def test_nsg_events_are_not_compute_events_and_mismatches_are_input_errors():
    from shared.app.events import parse_compute_event

    assert parse_compute_event(compute_event("Microsoft.Network/networkSecurityGroups/write")) is None
    assert parse_compute_event("not json") is None  # parse_event rejects it with its own message
    with pytest.raises(InputError, match="does not match"):
        parse_compute_event(compute_event("Microsoft.MachineLearningServices/workspaces/computes/delete"))
    with pytest.raises(InputError, match="not an Azure ML compute id"):
        parse_compute_event(compute_event("Microsoft.MachineLearningServices/workspaces/computes/write",
                                          uri=f"/subscriptions/{SUB}/resourceGroups/rg"))


def test_compute_event_without_the_lens_is_acknowledged_as_ignored():
    from types import SimpleNamespace

    from shared.app.aml_events import handle_compute_event
    from shared.app.events import parse_compute_event

    change = parse_compute_event(compute_event("Microsoft.MachineLearningServices/workspaces/computes/write"))
    outcome = handle_compute_event(change, SimpleNamespace(computes=None, owner_tag="owner"))
    assert outcome.status == "ignored" and "not configured" in outcome.reason


# --- approvals: an exemption on the exposing rule --------------------------------------------------------------

SSH_22 = {"sshSettings": {"sshPublicAccess": "Enabled", "sshPort": 22}}
CHG = {"id": "/subscriptions/s/providers/Microsoft.Authorization/policyExemptions/x", "ticket": "CHG-7"}


@pytest.mark.parametrize("case, rules, approved, status, finding_status", [
    ("the exposing rule is approved", OPEN_22, {("allowssh", 22)}, COMPLIANT, "Exempt"),
    ("nothing approved", OPEN_22, set(), NONCOMPLIANT, "Open"),
    ("another port of the rule is approved", OPEN_22, {("allowssh", 3389)}, NONCOMPLIANT, "Open"),
    ("another rule is approved", OPEN_22, {("other", 22)}, NONCOMPLIANT, "Open"),
    ("one of two exposing rules is approved", [rule("AllowSSH", 200, "22", "0.0.0.0/1"),
                                                rule("AllowSSH2", 210, "22", "128.0.0.0/1")],
     {("allowssh", 22)}, NONCOMPLIANT, "Open"),
    ("both exposing rules are approved", [rule("AllowSSH", 200, "22", "0.0.0.0/1"),
                                          rule("AllowSSH2", 210, "22", "128.0.0.0/1")],
     {("allowssh", 22), ("allowssh2", 22)}, COMPLIANT, "Exempt"),
])
def test_an_approved_rule_leaves_the_compute_compliant_with_an_exempt_finding(case, rules, approved, status,
                                                                              finding_status):
    """Like an NSG whose only finding is Exempt: compliant, the exposure kept visible as an Exempt finding;
    a single unapproved exposing rule keeps the compute critical."""
    c = parse_compute(instance(**SSH_22))
    nsg = net_nsg("nsg0", copy.deepcopy(rules))
    v = judge(c, ENGINE.evaluator, [nsg], approvals={nsg.id.lower(): {key: CHG for key in approved}})
    (f,) = [f for f in v.findings if f.kind != "owner"]
    assert (v.status, f.status, f.severity, f.exposure) == (status, finding_status, "critical", "internet"), case
    assert (f.finding_id in v.open_finding_ids) == (finding_status == "Open")
    if finding_status == "Exempt":
        assert "CHG-7" in f.reason and v.details["exemptions"] == [CHG] * len(approved) and v.severity is None
