"""In-memory Microsoft.Network NSG store with ARM semantics (bodies, etags, long-running operations)."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .validation import ArmError, bad_request, check_priorities, validate_resource_name, validate_rule

NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
RULE_TYPE = "Microsoft.Network/networkSecurityGroups/securityRules"
DEFAULT_RULE_TYPE = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"

# name, description, source prefix, destination prefix, access, priority, direction
_DEFAULTS = [
    (
        "AllowVnetInBound",
        "Allow inbound traffic from all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Inbound",
    ),
    (
        "AllowAzureLoadBalancerInBound",
        "Allow inbound traffic from azure load balancer",
        "AzureLoadBalancer",
        "*",
        "Allow",
        65001,
        "Inbound",
    ),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    (
        "AllowVnetOutBound",
        "Allow outbound traffic from all VMs to all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Outbound",
    ),
    (
        "AllowInternetOutBound",
        "Allow outbound traffic from all VMs to Internet",
        "*",
        "Internet",
        "Allow",
        65001,
        "Outbound",
    ),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
]

_PLURALS = (
    "sourcePortRanges",
    "destinationPortRanges",
    "sourceAddressPrefixes",
    "destinationAddressPrefixes",
)


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def nsg_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{NSG_TYPE}/{name}"


def parse_nsg_id(resource_id: str) -> tuple[str, str, str]:
    """``/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n[/...]``."""
    parts = [p for p in resource_id.split("/") if p]
    low = [p.lower() for p in parts]
    try:
        if (
            low[0] != "subscriptions"
            or low[2] != "resourcegroups"
            or low[4] != "providers"
            or low[5] != "microsoft.network"
            or low[6] != "networksecuritygroups"
        ):
            raise ValueError
        return parts[1], parts[3], parts[7]
    except (IndexError, ValueError):
        raise ValueError(f"not an NSG resource id: {resource_id!r}") from None


def nsg_key(sub: str, rg: str, name: str) -> tuple[str, str, str]:
    return (sub.lower(), rg.lower(), name.lower())


def key_of(resource_id: str) -> tuple[str, str, str]:
    return nsg_key(*parse_nsg_id(resource_id))


@dataclass
class Rule:
    name: str
    properties: dict[str, Any]
    provisioning_state: str = "Succeeded"


@dataclass
class Nsg:
    subscription: str
    resource_group: str
    name: str
    location: str
    tags: dict[str, str] | None
    etag: str
    resource_guid: str
    rules: dict[str, Rule]  # lower-case name -> rule, insertion order kept
    extra_properties: dict[str, Any] = field(
        default_factory=dict
    )  # subnets, networkInterfaces, flushConnection
    provisioning_state: str = "Succeeded"
    seq: int = 0

    @property
    def id(self) -> str:
        return nsg_id(self.subscription, self.resource_group, self.name)


@dataclass
class Operation:
    id: str
    subscription: str
    location: str
    key: tuple[str, str, str]
    rule: str | None  # lower-case rule name, None for the NSG itself
    kind: str  # "put" | "delete"
    polls_left: int
    deadline: float
    fail: tuple[str, str] | None = None  # (code, message) when the operation is to fail
    status: str = "InProgress"


class NetworkStore:
    """Thread-safe NSG state. All methods that return bodies return fresh copies."""

    def __init__(self, *, lro_polls: int = 1, lro_auto_complete_s: float = 2.0) -> None:
        self.lock = threading.RLock()
        self.nsgs: dict[tuple[str, str, str], Nsg] = {}
        self.operations: dict[str, Operation] = {}
        self.lro_polls = lro_polls
        self.lro_auto_complete_s = lro_auto_complete_s
        self._seq = 0
        self._fail_next: list[tuple[str, str]] = []

    # --- rendering ---
    def render_rule(self, nsg: Nsg, rule: Rule) -> dict[str, Any]:
        props = {"provisioningState": rule.provisioning_state}
        props.update(copy.deepcopy(rule.properties))
        for plural in _PLURALS:
            props.setdefault(plural, [])
        return {
            "name": rule.name,
            "id": f"{nsg.id}/securityRules/{rule.name}",
            "etag": nsg.etag,
            "type": RULE_TYPE,
            "properties": props,
        }

    def render_defaults(self, nsg: Nsg) -> list[dict[str, Any]]:
        out = []
        for name, desc, src, dst, access, prio, direction in _DEFAULTS:
            out.append(
                {
                    "name": name,
                    "id": f"{nsg.id}/defaultSecurityRules/{name}",
                    "etag": nsg.etag,
                    "type": DEFAULT_RULE_TYPE,
                    "properties": {
                        "provisioningState": "Succeeded",
                        "description": desc,
                        "protocol": "*",
                        "sourcePortRange": "*",
                        "destinationPortRange": "*",
                        "sourceAddressPrefix": src,
                        "destinationAddressPrefix": dst,
                        "access": access,
                        "priority": prio,
                        "direction": direction,
                        "sourcePortRanges": [],
                        "destinationPortRanges": [],
                        "sourceAddressPrefixes": [],
                        "destinationAddressPrefixes": [],
                    },
                }
            )
        return out

    def render(self, nsg: Nsg) -> dict[str, Any]:
        props: dict[str, Any] = {
            "provisioningState": nsg.provisioning_state,
            "resourceGuid": nsg.resource_guid,
            "securityRules": [self.render_rule(nsg, r) for r in nsg.rules.values()],
            "defaultSecurityRules": self.render_defaults(nsg),
        }
        props.update(copy.deepcopy(nsg.extra_properties))
        body: dict[str, Any] = {
            "name": nsg.name,
            "id": nsg.id,
            "etag": nsg.etag,
            "type": NSG_TYPE,
            "location": nsg.location,
        }
        if nsg.tags is not None:
            body["tags"] = dict(nsg.tags)
        body["properties"] = props
        return body

    # --- lookup ---
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def get(self, key: tuple[str, str, str]) -> Nsg | None:
        return self.nsgs.get(key)

    def require(self, sub: str, rg: str, name: str) -> Nsg:
        nsg = self.nsgs.get(nsg_key(sub, rg, name))
        if nsg is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{NSG_TYPE}/{name}' under resource group '{rg}' was not found. For more "
                "details "
                "please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return nsg

    def require_rule(self, nsg: Nsg, rule: str, default: bool = False) -> dict[str, Any]:
        if default:
            for d in self.render_defaults(nsg):
                if d["name"].lower() == rule.lower():
                    return d
        else:
            r = nsg.rules.get(rule.lower())
            if r is not None:
                return self.render_rule(nsg, r)
        raise ArmError(
            404,
            "NotFound",
            f"Resource {nsg.id}/{'defaultSecurityRules' if default else 'securityRules'}/{rule} not found.",
        )

    def list(self, sub: str, rg: str | None = None) -> list[dict[str, Any]]:
        out = [n for k, n in self.nsgs.items() if k[0] == sub.lower() and (rg is None or k[1] == rg.lower())]
        out.sort(key=lambda n: n.seq)
        return [self.render(n) for n in out]

    # --- writes ---
    def _parse_rules(self, owner_id: str, rules: Any) -> dict[str, Rule]:
        if rules is None:
            return {}
        if not isinstance(rules, list):
            raise bad_request("InvalidRequestFormat", "properties.securityRules must be an array.")
        out: dict[str, Rule] = {}
        for raw in rules:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise bad_request("InvalidRequestFormat", "Every security rule needs a 'name'.")
            name = raw["name"]
            rid = f"{owner_id}/securityRules/{name}"
            props = validate_rule(rid, name, raw.get("properties"))
            if name.lower() in out:
                raise bad_request(
                    "InvalidRequestFormat",
                    f"Security rule name {name} is used more than once in the request.",
                )
            out[name.lower()] = Rule(name, props)
        check_priorities({r.name: r.properties for r in out.values()})
        return out

    def put_nsg(
        self, sub: str, rg: str, name: str, body: Any, api_version: str
    ) -> tuple[int, Nsg, Operation]:
        validate_resource_name(name)
        if not isinstance(body, dict):
            raise bad_request(
                "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        location = body.get("location")
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise bad_request("InvalidRequestFormat", "'properties' must be an object.")
        tags = body.get("tags")
        if tags is not None and not isinstance(tags, dict):
            raise bad_request("InvalidRequestFormat", "'tags' must be an object.")
        key = nsg_key(sub, rg, name)
        with self.lock:
            existing = self.nsgs.get(key)
            if not location:
                raise bad_request(
                    "LocationRequired", "The location property is required for this definition."
                )
            if (
                existing is not None
                and existing.location.replace(" ", "").lower() != str(location).replace(" ", "").lower()
            ):
                raise bad_request(
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{existing.location}' in resource "
                    "group "
                    f"'{rg}'. A resource with the same name cannot be created in location '{location}'.",
                )
            owner = existing.id if existing else nsg_id(sub, rg, name)
            rules = self._parse_rules(owner, props.get("securityRules"))
            for r in rules.values():
                r.provisioning_state = "Updating"
            extra = dict(existing.extra_properties) if existing else {}
            if "flushConnection" in props:
                extra["flushConnection"] = props["flushConnection"]
            if existing is None:
                nsg = Nsg(
                    sub,
                    rg,
                    name,
                    str(location),
                    tags,
                    new_etag(),
                    str(uuid.uuid4()),
                    rules,
                    extra,
                    "Updating",
                    self._next_seq(),
                )
                self.nsgs[key] = nsg
                status = 201
            else:
                nsg = existing
                nsg.tags = tags
                nsg.rules = rules
                nsg.extra_properties = extra
                nsg.etag = new_etag()
                nsg.provisioning_state = "Updating"
                status = 200
            return status, nsg, self._start_op(nsg, None, "put")

    def put_rule(self, sub: str, rg: str, name: str, rule: str, body: Any) -> tuple[int, Nsg, Operation]:
        if not isinstance(body, dict):
            raise bad_request(
                "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        with self.lock:
            nsg = self.require(sub, rg, name)
            rid = f"{nsg.id}/securityRules/{rule}"
            props = validate_rule(rid, rule, body.get("properties"))
            candidate = {r.name: r.properties for k, r in nsg.rules.items() if k != rule.lower()}
            candidate[rule] = props
            check_priorities(candidate)
            existing = nsg.rules.get(rule.lower())
            new = Rule(existing.name if existing else rule, props, "Updating")
            nsg.rules[rule.lower()] = new
            nsg.etag = new_etag()
            return (200 if existing else 201), nsg, self._start_op(nsg, rule.lower(), "put")

    def delete_nsg(self, sub: str, rg: str, name: str) -> Operation | None:
        with self.lock:
            nsg = self.nsgs.pop(nsg_key(sub, rg, name), None)
            if nsg is None:
                return None
            return self._start_op(nsg, None, "delete")

    def delete_rule(self, sub: str, rg: str, name: str, rule: str) -> Operation | None:
        with self.lock:
            nsg = self.require(sub, rg, name)
            if nsg.rules.pop(rule.lower(), None) is None:
                return None
            nsg.etag = new_etag()
            return self._start_op(nsg, rule.lower(), "delete")

    # --- operations ---
    def fail_next_operation(
        self, code: str = "InternalServerError", message: str = "Operation failed."
    ) -> None:
        """The next long-running PUT/DELETE ends with ``{"status": "Failed", "error": {...}}``."""
        with self.lock:
            self._fail_next.append((code, message))

    def _start_op(self, nsg: Nsg, rule: str | None, kind: str) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            subscription=nsg.subscription,
            location=nsg.location.replace(" ", "").lower(),
            key=nsg_key(nsg.subscription, nsg.resource_group, nsg.name),
            rule=rule,
            kind=kind,
            polls_left=self.lro_polls,
            deadline=time.monotonic() + self.lro_auto_complete_s,
            fail=self._fail_next.pop(0) if self._fail_next else None,
        )
        self.operations[op.id] = op
        return op

    def _finish(self, op: Operation) -> None:
        op.status = "Failed" if op.fail else "Succeeded"
        if op.kind != "put":
            return
        nsg = self.nsgs.get(op.key)
        if nsg is None:
            return
        state = "Failed" if op.fail else "Succeeded"
        if op.rule is None:
            nsg.provisioning_state = state
            for r in nsg.rules.values():
                r.provisioning_state = state
        elif op.rule in nsg.rules:
            nsg.rules[op.rule].provisioning_state = state

    def settle(self) -> None:
        """Complete operations whose auto-complete deadline passed (so state converges even without "
        "polling)."""
        now = time.monotonic()
        with self.lock:
            for op in self.operations.values():
                if op.status == "InProgress" and now >= op.deadline:
                    self._finish(op)

    def poll(self, op_id: str) -> Operation:
        with self.lock:
            op = self.operations.get(op_id)
            if op is None:
                raise ArmError(404, "NotFound", f"Operation {op_id} not found.")
            if op.status == "InProgress":
                if op.polls_left > 0:
                    op.polls_left -= 1
                else:
                    self._finish(op)
            return op

    # --- seeding/inspection ---
    def seed(
        self,
        body: dict[str, Any],
        *,
        subscription: str | None = None,
        resource_group: str | None = None,
        keep_etag: bool = True,
    ) -> str:
        """Insert/replace an NSG from an ARM body (``arm-nsg-get.json`` shape) without validation."""
        rid = body.get("id")
        if rid:
            sub, rg, name = parse_nsg_id(rid)
        else:
            if not (subscription and resource_group and body.get("name")):
                raise ValueError("seed needs body['id'] or subscription + resource_group + body['name']")
            sub, rg, name = subscription, resource_group, body["name"]
        props = copy.deepcopy(body.get("properties") or {})
        rules: dict[str, Rule] = {}
        for raw in props.pop("securityRules", None) or []:
            rp = dict(raw.get("properties") or {})
            state = rp.pop("provisioningState", "Succeeded")
            rules[raw["name"].lower()] = Rule(raw["name"], rp, state)
        props.pop("defaultSecurityRules", None)
        state = props.pop("provisioningState", "Succeeded")
        guid = props.pop("resourceGuid", None) or str(uuid.uuid4())
        with self.lock:
            key = nsg_key(sub, rg, name)
            old = self.nsgs.get(key)
            nsg = Nsg(
                sub,
                rg,
                name,
                body.get("location") or "westeurope",
                copy.deepcopy(body.get("tags")),
                (body.get("etag") if keep_etag else None) or new_etag(),
                guid,
                rules,
                props,
                state,
                old.seq if old else self._next_seq(),
            )
            self.nsgs[key] = nsg
            return nsg.id

    def mutate(
        self, resource_id: str, fn: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """Apply ``fn`` to the rendered ARM body (mutate in place or return a new one); store it; new etag."""
        with self.lock:
            key = key_of(resource_id)
            nsg = self.nsgs.get(key)
            if nsg is None:
                raise KeyError(resource_id)
            body = self.render(nsg)
            result = fn(body)
            body = result if result is not None else body
            body["id"] = nsg.id
            body.pop("etag", None)
            self.seed(body, keep_etag=False)
            return self.render(self.nsgs[key])
