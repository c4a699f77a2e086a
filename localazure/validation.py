"""Security rule and resource name validation in the style of the Microsoft.Network resource provider.

Only syntax is checked (what ARM rejects with 400 before anything is provisioned). Error codes follow the ones
ARM really returns where known (``SecurityRuleInvalidPortRange``, ``SecurityRuleConflict``,
``SecurityRuleParametersMissing``, ``InvalidResourceName``); the others are in the same style.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah", "*": "*"}
ACCESS = {"allow": "Allow", "deny": "Deny"}
DIRECTIONS = {"inbound": "Inbound", "outbound": "Outbound"}

#: Service tags accepted in single-value address prefix fields (compared case-insensitively).
#: Extend with ``KNOWN_SERVICE_TAGS.add("MyTag")`` if a test needs another one.
KNOWN_SERVICE_TAGS: set[str] = {
    "Internet",
    "VirtualNetwork",
    "AzureLoadBalancer",
    "AzureCloud",
    "Storage",
    "Sql",
    "SqlManagement",
    "AzureMonitor",
    "AppService",
    "AppServiceManagement",
    "ApiManagement",
    "AzureActiveDirectory",
    "AzureActiveDirectoryDomainServices",
    "AzureBackup",
    "AzureBastion",
    "AzureContainerRegistry",
    "AzureCosmosDB",
    "AzureDataLake",
    "AzureEventGrid",
    "AzureFrontDoor.Backend",
    "AzureFrontDoor.Frontend",
    "AzureFrontDoor.FirstParty",
    "AzureKeyVault",
    "AzureMachineLearning",
    "AzureResourceManager",
    "AzureSiteRecovery",
    "AzureTrafficManager",
    "BatchNodeManagement",
    "CognitiveServicesManagement",
    "DataFactory",
    "EventHub",
    "GatewayManager",
    "GuestAndHybridManagement",
    "HDInsight",
    "LogicApps",
    "MicrosoftContainerRegistry",
    "PowerBI",
    "ServiceBus",
    "ServiceFabric",
    "AzureDevOps",
    "AzureUpdateDelivery",
    "AzureArcInfrastructure",
    "AzureDatabricks",
    "AzurePlatformDNS",
    "AzurePlatformIMDS",
    "AzurePlatformLKM",
    "AzureConnectors",
    "AzureCognitiveSearch",
    "AzureIoTHub",
    "AzureOpenDatasets",
    "AzureSignalR",
    "MicrosoftCloudAppSecurity",
    "WindowsVirtualDesktop",
    "ActionGroup",
    "ApplicationInsightsAvailability",
    # classic/legacy default tags
    "INTERNET",
    "VIRTUAL_NETWORK",
    "AZURE_LOADBALANCER",
}
#: Tags that also exist in a regional form ``Tag.<region>``
#: (e.g. ``AzureCloud.westeurope``, ``Storage.EastUS``).
REGIONAL_SERVICE_TAGS: set[str] = {
    "AzureCloud",
    "Storage",
    "Sql",
    "AzureMonitor",
    "AppService",
    "ApiManagement",
    "AzureBackup",
    "AzureContainerRegistry",
    "AzureCosmosDB",
    "AzureKeyVault",
    "AzureMachineLearning",
    "BatchNodeManagement",
    "DataFactory",
    "EventHub",
    "GatewayManager",
    "HDInsight",
    "LogicApps",
    "ServiceBus",
    "ServiceFabric",
    "AzureSiteRecovery",
    "MicrosoftContainerRegistry",
    "AzureDatabricks",
    "AzureConnectors",
    "AzureIoTHub",
    "AzureSignalR",
    "PowerBI",
    "CognitiveServicesManagement",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,78}[A-Za-z0-9_])?$")
_PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
_REGION_RE = re.compile(r"^[A-Za-z0-9]+$")


class ArmError(Exception):
    """An ARM-style error; rendered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def validate_resource_name(name: str, kind: str = "resource") -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise bad_request(
            "InvalidResourceName",
            f"Resource name {name!r} is invalid. The name can be up to 80 characters long. It must begin "
            "with a "
            "word character, and it must end with a word character or with '_'. The name may contain word "
            "characters or '.', '-', '_'.",
        )


def is_service_tag(value: str) -> bool:
    lower = value.lower()
    known = {t.lower() for t in KNOWN_SERVICE_TAGS}
    if lower in known:
        return True
    base, dot, region = value.rpartition(".")
    regional = {t.lower() for t in REGIONAL_SERVICE_TAGS}
    return bool(dot and base.lower() in regional and _REGION_RE.match(region))


def is_ip_or_cidr(value: str) -> bool:
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def port_range_ok(value: Any, allow_star: bool = True) -> bool:
    if not isinstance(value, str):
        return False
    if value == "*":
        return allow_star
    m = _PORT_RE.match(value)
    if not m:
        return False
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    return 0 <= lo <= hi <= 65535


def _port_error(value: Any) -> ArmError:
    return bad_request(
        "SecurityRuleInvalidPortRange",
        f"Security rule has invalid Port range. Value provided: {value}. Value should be an integer OR "
        "integer "
        "range with '-' delimiter. Valid range 0-65535.",
    )


def _prefix_error(rule: str, value: Any) -> ArmError:
    return bad_request(
        "SecurityRuleInvalidAddressPrefix",
        f"Security rule {rule} has invalid Address prefix. Value provided: {value}",
    )


def _unsupported(rule: str, field: str, value: Any) -> ArmError:
    return bad_request(
        "SecurityRuleParameterContainsUnsupportedValue",
        f"Security rule parameter {field} for rule with Id {rule} cannot specify existing VNET address "
        f"space or service tags or '*'. Value provided: {value}",
    )


def _nonempty(value: Any) -> bool:
    return value is not None and value != "" and value != []


def _check_pair(
    rule_id: str,
    props: dict[str, Any],
    single: str,
    plural: str,
    *,
    ports: bool,
    asg_field: str | None = None,
) -> None:
    one = props.get(single)
    many = props.get(plural)
    asgs = props.get(asg_field) if asg_field else None
    if many is not None and not isinstance(many, list):
        raise bad_request("InvalidRequestFormat", f"Property '{plural}' of rule {rule_id} must be an array.")
    if _nonempty(one) and _nonempty(many):
        raise bad_request(
            "SecurityRuleParameterContainsUnsupportedValue",
            f"Security rule {rule_id} specifies both {single} and {plural}; only one of them may be set.",
        )
    if not _nonempty(one) and not _nonempty(many) and not _nonempty(asgs):
        alt = f", or {asg_field[0].upper()}{asg_field[1:]}" if asg_field else ""
        raise bad_request(
            "SecurityRuleParametersMissing",
            f"Required security rule parameters are missing for security rule with Id: {rule_id}. Security "
            "rule "
            f"must specify {plural[0].upper()}{plural[1:]}, {single[0].upper()}{single[1:]}{alt}.",
        )
    if _nonempty(one):
        if ports:
            if not port_range_ok(one):
                raise _port_error(one)
        elif not isinstance(one, str) or not (one == "*" or is_ip_or_cidr(one) or is_service_tag(one)):
            raise _prefix_error(rule_id, one)
    for item in many or []:
        if item == "*" or (isinstance(item, str) and not ports and is_service_tag(item)):
            raise _unsupported(rule_id, plural, item)
        if ports:
            if not port_range_ok(item, allow_star=False):
                raise _port_error(item)
        elif not isinstance(item, str) or not is_ip_or_cidr(item):
            raise _prefix_error(rule_id, item)


def _enum(rule_id: str, field: str, value: Any, allowed: dict[str, str]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise bad_request(
            "InvalidRequestFormat" if value is None else "SecurityRuleParameterContainsUnsupportedValue",
            f"Security rule {rule_id}: value {value!r} of property '{field}' is not one of "
            f"{', '.join(allowed.values())}.",
        )
    return allowed[value.lower()]


def validate_rule(rule_id: str, name: str, props: Any) -> dict[str, Any]:
    """Validate one security rule's ``properties``.

    Returns a normalized copy (canonical enum casing, empty plural arrays added).

    Raises :class:`ArmError` (400) on the first problem, like ARM does.
    """
    validate_resource_name(name, "security rule")
    if not isinstance(props, dict):
        raise bad_request("InvalidRequestFormat", f"Security rule {rule_id} has no 'properties' object.")
    out = dict(props)
    for ro in ("provisioningState",):
        out.pop(ro, None)
    out["protocol"] = _enum(rule_id, "protocol", props.get("protocol"), PROTOCOLS)
    out["access"] = _enum(rule_id, "access", props.get("access"), ACCESS)
    out["direction"] = _enum(rule_id, "direction", props.get("direction"), DIRECTIONS)
    prio = props.get("priority")
    if isinstance(prio, bool) or not isinstance(prio, int) or not 100 <= prio <= 4096:
        raise bad_request(
            "SecurityRuleInvalidPriority",
            f"Security rule {rule_id} has invalid priority {prio}. Value provided: {prio}. Allowed values "
            "are "
            "from 100 to 4096.",
        )
    _check_pair(rule_id, props, "sourcePortRange", "sourcePortRanges", ports=True)
    _check_pair(rule_id, props, "destinationPortRange", "destinationPortRanges", ports=True)
    _check_pair(
        rule_id,
        props,
        "sourceAddressPrefix",
        "sourceAddressPrefixes",
        ports=False,
        asg_field="sourceApplicationSecurityGroups",
    )
    _check_pair(
        rule_id,
        props,
        "destinationAddressPrefix",
        "destinationAddressPrefixes",
        ports=False,
        asg_field="destinationApplicationSecurityGroups",
    )
    desc = props.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 140):
        raise bad_request(
            "InvalidRequestFormat", f"Security rule {rule_id}: description is limited to 140 chars."
        )
    for plural in (
        "sourcePortRanges",
        "destinationPortRanges",
        "sourceAddressPrefixes",
        "destinationAddressPrefixes",
    ):
        out.setdefault(plural, [])
    return out


def check_priorities(rules: dict[str, dict[str, Any]]) -> None:
    """``rules``: name -> normalized properties. Priority must be unique per direction."""
    seen: dict[tuple[str, int], str] = {}
    for name, props in rules.items():
        key = (str(props.get("direction", "")).lower(), props.get("priority"))
        if key in seen:
            raise bad_request(
                "SecurityRuleConflict",
                f"Security rule {seen[key]} conflicts with rule {name}. Rules cannot have the same "
                "Priority and "
                "Direction. To learn more, see aka.ms/nsgrules.",
            )
        seen[key] = name
