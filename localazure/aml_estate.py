"""A seeded Azure ML estate for the stand-ins (demo and tests): workspaces, computes, their VNet's NSGs.

* ``ws-vision`` (rg-ml): ``ci-bob-notebook`` (instance, SSH public access off), ``train-a100`` (cluster from the
  reference sample: SSH on, no owner, two nodes with NAT ports 50000/50001), in the VNet ``vnet-ml``;
* ``ws-nlp`` (rg-ml): ``ci-chen-nlp`` (instance without a VNet, SSH off);
* NSGs in ``rg-ml-net``: ``snet-notebooks-nsg`` (subnet ``snet-notebooks``: AML's inbound rules and SSH from the
  Bastion subnet only), ``snet-training-nsg`` (subnet ``snet-training``: SSH on 2222 from the VPN), and the NSG
  AML creates for public nodes (``…-azurebatch-cloudservicenetworksecuritygroup``: 44224 and 29876-29877 only).

:func:`compute_instance` builds the ARM body of a compute instance like the reference sample.
"""

from __future__ import annotations

import copy
from typing import Any

from localazure.estate import BASTION_SUBNET, ML_SUB, PLATFORM_SUB, VPN_EGRESS

ML_RG, NET_RG = "rg-ml", "rg-ml-net"
VNET = f"/subscriptions/{ML_SUB}/resourceGroups/{NET_RG}/providers/Microsoft.Network/virtualNetworks/vnet-ml"
NOTEBOOKS_SUBNET = f"{VNET}/subnets/snet-notebooks"
TRAINING_SUBNET = f"{VNET}/subnets/snet-training"
AML_NSG = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b-azurebatch-cloudservicenetworksecuritygroup"
NOTEBOOKS_NSG = "snet-notebooks-nsg"


def workspace_path(ws: str) -> str:
    return f"/subscriptions/{ML_SUB}/resourceGroups/{ML_RG}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"


def nsg_id(name: str) -> str:
    return f"/subscriptions/{ML_SUB}/resourceGroups/{NET_RG}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def _rule(name: str, priority: int, port: str, source: str, access: str = "Allow") -> dict[str, Any]:
    return {"name": name, "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port,
                                         "sourceAddressPrefix": source, "destinationAddressPrefix": "*",
                                         "access": access, "priority": priority, "direction": "Inbound"}}


AML_RULES = [_rule("AzureMachineLearning", 100, "44224", "AzureMachineLearning"),
             _rule("BatchNodeManagement", 110, "29876-29877", "BatchNodeManagement")]


def network_nsgs() -> list[dict[str, Any]]:
    def nsg(name: str, rules: list[dict[str, Any]], subnets: list[str], owner: str) -> dict[str, Any]:
        return {"id": nsg_id(name), "name": name, "location": "westeurope", "tags": {"owner": owner},
                "properties": {"securityRules": copy.deepcopy(rules), "subnets": [{"id": s} for s in subnets]}}

    return [
        nsg(NOTEBOOKS_NSG, [*AML_RULES, _rule("AllowSSHFromBastion", 300, "22", BASTION_SUBNET)],
            [NOTEBOOKS_SUBNET], "ml-platform@contoso.example"),
        nsg("snet-training-nsg", [*AML_RULES, _rule("AllowSSHFromVPN", 300, "2222", VPN_EGRESS)],
            [TRAINING_SUBNET], "ml-platform@contoso.example"),
        nsg(AML_NSG, AML_RULES, [], "ml-platform@contoso.example"),
    ]


def compute_instance(ws: str, name: str, *, owner: str | None, owner_oid: str | None = None,
                     subnet: str | None = NOTEBOOKS_SUBNET, ssh: str = "Disabled", ssh_port: int = 22,
                     public_ip: str | None = None, vm_size: str = "STANDARD_NC24ADS_A100_V4") -> dict[str, Any]:
    inner: dict[str, Any] = {
        "vmSize": vm_size, "enableNodePublicIp": public_ip is not None, "applicationSharingPolicy": "Personal",
        "sshSettings": {"sshPublicAccess": ssh, "adminUserName": "azureuser", "sshPort": ssh_port},
        "connectivityEndpoints": {"privateIpAddress": "10.20.1.4",
                                  **({"publicIpAddress": public_ip} if public_ip else {})},
        "state": "Running",
    }
    if subnet:
        inner["subnet"] = {"id": subnet}
    if owner_oid:
        inner["personalComputeInstanceSettings"] = {"assignedUser": {"objectId": owner_oid}}
        inner["createdBy"] = {"userName": owner, "userId": owner_oid}
    return {"id": f"{workspace_path(ws)}/computes/{name}", "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes", "location": "westeurope",
            "tags": {"owner": owner} if owner else {},
            "properties": {"computeType": "ComputeInstance", "computeLocation": "westeurope",
                           "provisioningState": "Succeeded", "properties": inner}}


def training_cluster(reference_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reference cluster sample's shape (SSH on, public nodes, no owner) in ``ws-vision``."""
    body = copy.deepcopy(reference_body) if reference_body else {
        "name": "train-a100", "type": "Microsoft.MachineLearningServices/workspaces/computes",
        "location": "westeurope", "tags": {"costcenter": "4711"},
        "properties": {"computeType": "AmlCompute", "computeLocation": "westeurope", "provisioningState": "Succeeded",
                       "properties": {"vmSize": "STANDARD_ND96ASR_V4", "subnet": {"id": TRAINING_SUBNET},
                                      "remoteLoginPortPublicAccess": "Enabled", "enableNodePublicIp": True,
                                      "allocationState": "Steady", "currentNodeCount": 2}}}
    body.pop("_note", None)
    body["id"] = f"{workspace_path('ws-vision')}/computes/{body['name']}"
    body["properties"]["properties"]["subnet"] = {"id": TRAINING_SUBNET}
    return body


CLUSTER_NODES = [{"nodeId": "tvm-0001", "privateIpAddress": "10.20.2.4", "publicIpAddress": "20.61.40.7",
                  "port": 50000, "nodeState": "idle"},
                 {"nodeId": "tvm-0002", "privateIpAddress": "10.20.2.5", "publicIpAddress": "20.61.40.7",
                  "port": 50001, "nodeState": "running"}]


def seed_ml_estate(azure: Any, *, nsgs: bool = True) -> dict[str, str]:
    """Seed workspaces, computes and (``nsgs``) the VNet's NSGs; returns the ids by short name."""
    ids = {"ws-vision": azure.aml.seed_workspace(ML_SUB, ML_RG, "ws-vision", tags={"owner": "vision@contoso.example"}),
           "ws-nlp": azure.aml.seed_workspace(ML_SUB, ML_RG, "ws-nlp", tags={"owner": "nlp@contoso.example"})}
    if nsgs:
        for body in network_nsgs():
            ids[body["name"]] = azure.seed_nsg(body)
    ids["ci-bob-notebook"] = azure.aml.seed_compute(compute_instance(
        "ws-vision", "ci-bob-notebook", owner="bob.jensen@contoso.example", ssh="Disabled"))
    ids["train-a100"] = azure.aml.seed_compute(training_cluster(), nodes=CLUSTER_NODES)
    ids["ci-chen-nlp"] = azure.aml.seed_compute(compute_instance(
        "ws-nlp", "ci-chen-nlp", owner="chen.wei@contoso.example", subnet=None, ssh="Disabled",
        public_ip="20.61.33.9"))
    return ids


def workspace_rows(now: Any, computes: dict[str, str]) -> list[dict[str, Any]]:
    """Stand-in ``Syslog`` and ``SecurityAlert`` rows of the same Log Analytics workspace (``Type`` column as in
    an export), so every KPI tile has something: sshd failures on the jump boxes over three days (plus
    lines that are not failures), and Defender brute-force alerts, one of them exported twice (dedup) and
    one on the exposed compute (joins to its finding)."""
    from datetime import timedelta

    def iso(t: Any) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")

    rows: list[dict[str, Any]] = []
    failures = {"vm-jump-01": (14, 3, 41), "vm-jump-02": (0, 2, 5), "vm-jump-03": (1, 0, 0)}
    for computer, per_day in failures.items():
        for back, count in enumerate(per_day):
            day = now - timedelta(days=back, hours=1)
            for i in range(count):
                message = (f"Failed password for root from 45.155.205.{i % 250} port {40000 + i} ssh2"
                           if i % 3 else f"Invalid user admin{i} from 185.224.128.{i % 250} port {50000 + i}")
                rows.append({"Type": "Syslog", "TimeGenerated": iso(day - timedelta(minutes=i)),
                             "Computer": computer, "Facility": "authpriv", "SeverityLevel": "info",
                             "ProcessName": "sshd", "ProcessID": 1200 + i, "SyslogMessage": message})
            rows.append({"Type": "Syslog", "TimeGenerated": iso(day), "Computer": computer, "Facility": "authpriv",
                         "SeverityLevel": "info", "ProcessName": "sshd", "ProcessID": 999,
                         "SyslogMessage": "Accepted publickey for azureuser from 10.0.1.5 port 50122 ssh2"})
    vm = (f"/subscriptions/{PLATFORM_SUB}/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/"
          "virtualMachines/vm-jump-01")

    def alert(alert_id: str, alert_type: str, resource: str, when: Any, severity: str = "Medium",
              status: str = "New") -> dict[str, Any]:
        return {"Type": "SecurityAlert", "TimeGenerated": iso(when), "SystemAlertId": alert_id,
                "AlertType": alert_type, "AlertName": alert_type.replace("_", " "), "AlertSeverity": severity,
                "ResourceId": resource, "ProviderName": "Azure Security Center", "Status": status,
                "CompromisedEntity": resource.rsplit("/", 1)[-1]}

    rows += [alert("2517538088322968242_a1", "VM_SshBruteForceFailed", vm, now - timedelta(days=2)),
             alert("2517538088322968242_a1", "VM_SshBruteForceFailed", vm, now - timedelta(days=2, minutes=-30),
                   status="InProgress"),  # the same alert again (status update): counted once
             alert("2517538088322968242_a2", "VM_SshBruteForceFailed", vm, now - timedelta(days=1)),
             alert("2517538088322968242_a3", "VM_LoginBruteForceValidUserFailed", vm, now - timedelta(hours=3),
                   severity="High"),
             alert("2517538088322968242_b1", "SSH_Incoming_BF_ManyToOne", computes["ci-ada-gpu"],
                   now - timedelta(minutes=20), severity="Low"),
             alert("2517538088322968242_x1", "VM_SuspiciousCommandLine", vm, now - timedelta(hours=2))]
    return rows
