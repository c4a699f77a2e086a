"""The six default security rules every NSG has (the same everywhere, not editable).

The sweep's Resource Graph query leaves ``defaultSecurityRules`` out to stay far below the 16 MiB page limit;
:func:`with_default_rules` puts them back so a swept NSG evaluates exactly like one read with a GET.
"""

from __future__ import annotations

from typing import Any

NSG_TYPE = "microsoft.network/networksecuritygroups"

# name, description, source prefix, destination prefix, access, priority, direction
_DEFAULTS = (
    ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "VirtualNetwork", "VirtualNetwork",
     "Allow", 65000, "Inbound"),
    ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer",
     "*", "Allow", 65001, "Inbound"),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork",
     "VirtualNetwork", "Allow", 65000, "Outbound"),
    ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow",
     65001, "Outbound"),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
)


def default_rules(nsg_id: str) -> list[dict[str, Any]]:
    """The default rules of ``nsg_id`` in ARM shape (``properties`` nested)."""
    return [{
        "name": name,
        "id": f"{nsg_id}/defaultSecurityRules/{name}",
        "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
        "properties": {
            "description": description, "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
            "sourceAddressPrefix": source, "destinationAddressPrefix": destination, "access": access,
            "priority": priority, "direction": direction, "sourcePortRanges": [], "destinationPortRanges": [],
            "sourceAddressPrefixes": [], "destinationAddressPrefixes": [], "provisioningState": "Succeeded",
        },
    } for name, description, source, destination, access, priority, direction in _DEFAULTS]


def with_default_rules(row: Any) -> Any:
    """A Resource Graph NSG row without ``properties.defaultSecurityRules`` gets the standard six.

    Anything else (other types, rows that carry their own defaults, malformed rows) is returned untouched:
    the parser reports what is wrong with it.
    """
    if not isinstance(row, dict) or str(row.get("type", "")).lower() != NSG_TYPE:
        return row
    props = row.get("properties")
    nsg_id = row.get("id")
    if not isinstance(props, dict) or "defaultSecurityRules" in props or not isinstance(nsg_id, str):
        return row
    return {**row, "properties": {**props, "defaultSecurityRules": default_rules(nsg_id)}}
