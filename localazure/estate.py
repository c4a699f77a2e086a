"""The demo's seeded estate: a realistic, compliant starting point (a few dozen NSGs in two subscriptions).

Azure ML GPU compute instances and training clusters (inbound 44224 from ``AzureMachineLearning``,
29876-29877 from ``BatchNodeManagement``, SSH only from the Bastion subnet or the VPN on port 2222), the
hub's Bastion subnet, Just-In-Time protected VMs, and ordinary web/API/data tiers.
"""

from __future__ import annotations

from typing import Any

ML_SUB = "2c1e3d4f-0000-4000-8000-00000000a11c"
PLATFORM_SUB = "7d3f9a10-0000-4000-8000-00000000b22d"
BASTION_SUBNET = "10.0.1.0/26"
VPN_EGRESS = "52.174.10.16/28"


def _rule(name: str, priority: int, port: str | list[str], source: str | list[str], *, access: str = "Allow",
          protocol: str = "Tcp", direction: str = "Inbound", description: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"protocol": protocol, "sourcePortRange": "*", "destinationAddressPrefix": "*",
                             "access": access, "priority": priority, "direction": direction}
    if isinstance(port, list):
        props["destinationPortRanges"] = port
    else:
        props["destinationPortRange"] = port
    if isinstance(source, list):
        props["sourceAddressPrefixes"] = source
    else:
        props["sourceAddressPrefix"] = source
    if description:
        props["description"] = description
    return {"name": name, "properties": props}


def _nsg(sub: str, rg: str, name: str, rules: list[dict[str, Any]], owner: str, **tags: str) -> dict[str, Any]:
    return {"id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}",
            "name": name, "location": "westeurope", "tags": {"owner": owner, **tags},
            "properties": {"securityRules": rules}}


def _aml(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_rule("AzureMachineLearning", 100, "44224", "AzureMachineLearning",
                  description="Azure ML compute instance management"),
            _rule("BatchNodeManagement", 110, "29876-29877", "BatchNodeManagement",
                  description="Azure Batch node management"),
            *extra]


def demo_estate() -> list[dict[str, Any]]:
    nsgs: list[dict[str, Any]] = []
    scientists = ["ada.okafor", "bob.jensen", "chen.wei", "dara.singh", "eli.cohen", "fatima.zahra",
                  "goran.ilic", "hana.sato"]
    for i, who in enumerate(scientists, start=1):
        nsgs.append(_nsg(ML_SUB, "rg-ml-gpu", f"ci-gpu-{i:02d}-nsg",
                         _aml([_rule("AllowSSHFromBastion", 300, "22", BASTION_SUBNET, description="Bastion only")]),
                         f"{who}@contoso.example", workload="ml-notebook", gpu="A100" if i % 2 else "H100"))
    for name, gpu in (("cluster-a100-nsg", "A100"), ("cluster-h100-nsg", "H100"), ("cluster-l40s-nsg", "L40S")):
        nsgs.append(_nsg(ML_SUB, "rg-ml-train", name,
                         _aml([_rule("AllowSSHFromVPN", 300, "2222", VPN_EGRESS, description="corporate VPN egress"),
                               _rule("DenySSHInternet", 4000, "22", "Internet", access="Deny",
                                     description="guardrail: do not delete")]),
                         "ml-platform@contoso.example", workload="ml-training", gpu=gpu))
    nsgs.append(_nsg(ML_SUB, "rg-ml-data", "feature-store-nsg",
                     [_rule("AllowSqlFromVNet", 100, "1433", "VirtualNetwork")], "data@contoso.example"))
    nsgs.append(_nsg(PLATFORM_SUB, "rg-hub", "AzureBastionSubnet-nsg", [
        _rule("AllowHttpsInbound", 120, "443", "Internet"),
        _rule("AllowGatewayManagerInbound", 130, "443", "GatewayManager"),
        _rule("AllowAzureLoadBalancerInbound", 140, "443", "AzureLoadBalancer"),
        _rule("AllowBastionHostCommunication", 150, ["8080", "5701"], "VirtualNetwork", protocol="*"),
        _rule("AllowSshRdpOutbound", 100, ["22", "3389"], "*", protocol="*", direction="Outbound"),
        _rule("AllowAzureCloudOutbound", 110, "443", "*", direction="Outbound"),
    ], "netops@contoso.example"))
    for i in range(1, 5):
        nsgs.append(_nsg(PLATFORM_SUB, "rg-jumpboxes", f"vm-jump-{i:02d}-nsg", [
            _rule(f"SecurityCenter-JITRule-{1000 + i}-DenyAll", 4096, ["22", "3389"], "*", access="Deny",
                  description="MDC JIT network access rule"),
            _rule("AllowSSHFromBastion", 200, "22", BASTION_SUBNET),
        ], "netops@contoso.example"))
    for tier, port in (("web", "443"), ("api", "8443"), ("worker", "9000")):
        for env in ("dev", "test", "prod"):
            source = "Internet" if tier == "web" else "VirtualNetwork"
            nsgs.append(_nsg(PLATFORM_SUB, f"rg-apps-{env}", f"{tier}-{env}-nsg", [
                _rule(f"Allow{tier.title()}", 100, port, source),
                _rule("AllowSSHFromBastion", 200, "22", BASTION_SUBNET),
                _rule("AllowWinRMFromAdmins", 210, "5985-5986", ["10.20.0.0/16", "10.30.0.0/16"]),
            ], "apps@contoso.example", env=env))
    for name in ("aks-system-nsg", "aks-gpu-nsg"):
        nsgs.append(_nsg(PLATFORM_SUB, "rg-aks", name, [
            _rule("AllowHttpsFromInternet", 100, "443", "Internet"),
            _rule("AllowKubeletFromVNet", 110, "10250", "VirtualNetwork"),
        ], "platform@contoso.example"))
    return nsgs
