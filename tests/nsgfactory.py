"""Builders for NSG JSON in the exact ARM shape of tests/fixtures/azure-reference/arm-nsg-get.json."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "azure-reference"
SUB = "2c1e3d4f-0000-4000-8000-00000000a11c"


def reference(name: str) -> Any:
    return json.loads((REFERENCE / name).read_text())


def default_rules(nsg_id: str) -> list[dict[str, Any]]:
    rules = copy.deepcopy(reference("arm-nsg-get.json")["responses"]["200"]["body"]["properties"]
                          ["defaultSecurityRules"])
    for r in rules:
        r["id"] = f"{nsg_id}/defaultSecurityRules/{r['name']}"
    return rules


def nsg_id(name: str = "nsg1", rg: str = "rg1") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def rule(name: str, priority: int, port: str | list[str] = "22", source: str | list[str] = "*", *,
         access: str = "Allow", protocol: str = "Tcp", direction: str = "Inbound",
         asgs: list[str] | None = None, nsg: str = "nsg1", dest: str | list[str] = "*",
         dest_asgs: list[str] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "provisioningState": "Succeeded", "protocol": protocol, "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "access": access, "priority": priority, "direction": direction,
        "sourcePortRanges": [], "destinationPortRanges": [], "sourceAddressPrefixes": [],
        "destinationAddressPrefixes": [],
    }
    if dest_asgs:
        del props["destinationAddressPrefix"]
        props["destinationApplicationSecurityGroups"] = [{"id": a} for a in dest_asgs]
    elif isinstance(dest, list):
        del props["destinationAddressPrefix"]
        props["destinationAddressPrefixes"] = dest
    else:
        props["destinationAddressPrefix"] = dest
    if isinstance(port, list):
        props["destinationPortRanges"] = port
    else:
        props["destinationPortRange"] = port
    if asgs:
        props["sourceApplicationSecurityGroups"] = [{"id": a} for a in asgs]
    elif isinstance(source, list):
        props["sourceAddressPrefixes"] = source
    else:
        props["sourceAddressPrefix"] = source
    return {"name": name, "id": f"{nsg_id(nsg)}/securityRules/{name}",
            "etag": 'W/"00000000-0000-4000-8000-000000000001"',
            "type": "Microsoft.Network/networkSecurityGroups/securityRules", "properties": props}


def nsg(rules: list[dict[str, Any]], *, name: str = "nsg1", defaults: bool = True,
        tags: dict[str, str] | None = None) -> dict[str, Any]:
    i = nsg_id(name)
    return {"name": name, "id": i, "etag": 'W/"00000000-0000-4000-8000-000000000002"',
            "type": "Microsoft.Network/networkSecurityGroups", "location": "westeurope",
            "tags": tags or {},
            "properties": {"provisioningState": "Succeeded", "securityRules": rules,
                           **({"defaultSecurityRules": default_rules(i)} if defaults else {})}}
