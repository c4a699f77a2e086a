"""Inventory for the nightly sweep: Resource Graph query text, scope, and row parsing (pure, no I/O).

Two queries, both paged with ``$skipToken`` (at most 1,000 rows a page):

* :data:`NSG_QUERY` - every NSG in scope with its rules, tags and attachments (``properties.subnets``,
  ``properties.networkInterfaces``); rows are parsed by :func:`shared.core.model.parse_nsg` like any other shape.
* :data:`PUBLIC_NIC_QUERY` - the network interfaces that carry a public IP, with their own NSG and the
  subnets of their public IP configurations: the context for effective exposure (``shared.core.effective``).
  Only NICs with a public IP matter for "reachable from the internet", so only those are kept in memory.

Both are ordered by ``subscriptionId, id`` (a unique key): stable paging, and when a page fails midway the
subscriptions already complete are exactly those sorted before the last one seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.errors import InputError

# Only what evaluation needs: a full NSG row is ~13 MiB per 1,000 with 10 rules and Resource Graph refuses pages
# over 16 MiB. The six default rules are the same everywhere and are put back locally
# (shared.azure.defaultrules).
NSG_QUERY = """resources
| where type =~ 'microsoft.network/networksecuritygroups'
| project id, name, type, location, resourceGroup, subscriptionId, tags,
          properties = pack('securityRules', properties.securityRules, 'subnets', properties.subnets,
                            'networkInterfaces', properties.networkInterfaces)
| order by subscriptionId asc, id asc"""

PUBLIC_NIC_QUERY = """resources
| where type =~ 'microsoft.network/networkinterfaces'
| where tostring(properties.ipConfigurations) has 'publicIPAddress'
| project id, type, resourceGroup, subscriptionId, properties
| order by subscriptionId asc, id asc"""

NIC_TYPE = "microsoft.network/networkinterfaces"
MAX_SUBSCRIPTIONS_PER_QUERY = 1000  # the CLI and PowerShell batch subscription lists in 1,000s too
PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Scope:
    """What to sweep: a subscription list, management groups, or (both empty) everything readable."""

    subscriptions: tuple[str, ...] = ()
    management_groups: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "subscriptions" if self.subscriptions else "managementGroups" if self.management_groups \
            else "tenant"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.subscriptions:
            out["subscriptions"] = list(self.subscriptions)
        if self.management_groups:
            out["managementGroups"] = list(self.management_groups)
        return out

    def request_scopes(self) -> list[dict[str, list[str]]]:
        """The ``subscriptions`` / ``managementGroups`` part of each Resource Graph request body.

        One entry per request series: subscription lists are split in batches of 1,000; a tenant-wide
        query sends neither field.
        """
        if self.subscriptions:
            subs = list(self.subscriptions)
            return [{"subscriptions": subs[i:i + MAX_SUBSCRIPTIONS_PER_QUERY]}
                    for i in range(0, len(subs), MAX_SUBSCRIPTIONS_PER_QUERY)]
        if self.management_groups:
            return [{"managementGroups": list(self.management_groups)}]
        return [{}]


@dataclass(frozen=True, slots=True)
class PublicNic:
    """A NIC with at least one public IP configuration (ids lower-cased: ARM ids are case-insensitive)."""

    id: str
    nsg_id: str | None
    public_subnets: tuple[str, ...]  # subnets of the ipConfigurations that carry a public IP
    public_ips: tuple[str, ...] = ()


def _ref_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("id"), str) and value["id"]:
        return value["id"].lower()
    return None


def parse_public_nic(row: Any) -> PublicNic | None:
    """A Resource Graph (or ARM) NIC row -> :class:`PublicNic`, or None when it has no public IP."""
    if not isinstance(row, Mapping) or not isinstance(row.get("id"), str):
        raise InputError("network interface row without an 'id'")
    rtype = row.get("type")
    if isinstance(rtype, str) and rtype.lower() != NIC_TYPE:
        raise InputError(f"not a network interface (type {rtype!r})", nsg=row["id"])
    props = row.get("properties")
    props = {} if props is None else props
    if not isinstance(props, Mapping):
        raise InputError("field 'properties' must be an object", nsg=row["id"])
    configs = props.get("ipConfigurations")
    configs = [] if configs is None else configs
    if not isinstance(configs, list):
        raise InputError("field 'ipConfigurations' must be a list", nsg=row["id"])
    subnets: list[str] = []
    ips: list[str] = []
    for config in configs:
        cprops = config.get("properties") if isinstance(config, Mapping) else None
        if not isinstance(cprops, Mapping):
            continue
        public_ip = _ref_id(cprops.get("publicIPAddress"))
        subnet = _ref_id(cprops.get("subnet"))
        if public_ip and subnet:
            ips.append(public_ip)
            if subnet not in subnets:
                subnets.append(subnet)
    if not ips:
        return None
    return PublicNic(row["id"].lower(), _ref_id(props.get("networkSecurityGroup")), tuple(subnets), tuple(ips))


@dataclass
class AttachmentIndex:
    """Public NICs by id and by subnet, plus what the NSG stream tells about subnets that hold them.

    Memory is proportional to the NICs with a public IP, never to the whole estate.
    """

    nics: dict[str, PublicNic] = field(default_factory=dict)
    by_subnet: dict[str, list[PublicNic]] = field(default_factory=dict)
    available: bool = True  # False when the NIC inventory could not be read: reachability is unknown
    subnet_nsg: dict[str, str] = field(default_factory=dict)  # public subnets only, filled while streaming
    nic_nsgs: set[str] = field(default_factory=set)  # NSGs attached to a public NIC

    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> AttachmentIndex:
        index = cls()
        for row in rows:
            nic = parse_public_nic(row)
            if nic is not None:
                index.add(nic)
        return index

    @classmethod
    def unavailable(cls) -> AttachmentIndex:
        return cls(available=False)

    def add(self, nic: PublicNic) -> None:
        self.nics[nic.id] = nic
        if nic.nsg_id:
            self.nic_nsgs.add(nic.nsg_id)
        for subnet in nic.public_subnets:
            self.by_subnet.setdefault(subnet, []).append(nic)

    def nic(self, nic_id: str) -> PublicNic | None:
        return self.nics.get(nic_id.lower())

    def nics_in(self, subnet_id: str) -> list[PublicNic]:
        return self.by_subnet.get(subnet_id.lower(), [])

    def is_nic_nsg_of_public_nic(self, nsg_id: str) -> bool:
        return nsg_id.lower() in self.nic_nsgs

    def note_subnets(self, nsg_id: str, subnet_ids: Iterable[str]) -> bool:
        """Record ``nsg_id`` as the NSG of those of its subnets that hold public NICs; True if any did."""
        hit = False
        for subnet in subnet_ids:
            low = subnet.lower()
            if low in self.by_subnet:
                self.subnet_nsg[low] = nsg_id.lower()
                hit = True
        return hit
