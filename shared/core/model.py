"""The normalized NSG model and the strict parsers that build it from every shape Azure hands out.

Shapes: ARM REST JSON (GET/list, ``properties`` nested), Resource Graph rows (ARM body plus
``subscriptionId``/``resourceGroup`` and lower-case ``type``), ``az network nsg show/list`` JSON (rule
``properties`` flattened into the rule) and azure-mgmt-network model objects (serialized to REST JSON).
Parsing is strict: anything that could change what an NSG lets through and that we do not understand is
an :class:`InputError` naming the NSG and rule — never a crash and never silently skipped. Two exceptions,
both for data read from Azure (docs/semantics.md): an unknown *field* is logged once and the rule is
evaluated (``strict=False``; user files and PUT bodies keep ``strict=True``), and an unknown address
*token* is kept as ``KIND_UNKNOWN`` (never public) and reported as a finding of its own, on every path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from shared.core.addresses import SourceToken, parse_source_token
from shared.core.errors import InputError
from shared.core.frozen import fast_constructor
from shared.core.ports import PortSet

log = logging.getLogger("nsg_guard.model")

NSG_TYPE = "microsoft.network/networksecuritygroups"
INBOUND, OUTBOUND = "Inbound", "Outbound"
ALLOW, DENY = "Allow", "Deny"
PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah", "*": "*", "any": "*"}
TCP_CAPABLE = frozenset({"Tcp", "*"})

# Every field of SecurityRulePropertiesFormat (Microsoft.Network 2024-05-01). An unknown key could carry
# meaning we would ignore, so it is an input error rather than a silent skip.
RULE_PROPERTY_KEYS = frozenset({
    "description", "protocol", "sourcePortRange", "destinationPortRange", "sourceAddressPrefix",
    "sourceAddressPrefixes", "sourceApplicationSecurityGroups", "destinationAddressPrefix",
    "destinationAddressPrefixes", "destinationApplicationSecurityGroups", "sourcePortRanges",
    "destinationPortRanges", "access", "priority", "direction", "provisioningState",
})
RULE_ENVELOPE_KEYS = frozenset({"name", "id", "etag", "type", "properties"})
AZ_RULE_EXTRA_KEYS = frozenset({"name", "id", "etag", "type", "resourceGroup"})


@dataclass(frozen=True, slots=True)
class Rule:
    """One security rule, as written (for round-trips to ARM) plus its parsed sets (for evaluation)."""

    name: str
    id: str
    priority: int
    direction: str
    access: str
    protocol: str
    sources: tuple[SourceToken, ...]
    destination_ports: PortSet
    source_address_prefix: str | None = None
    source_address_prefixes: tuple[str, ...] = ()
    source_asgs: tuple[str, ...] = ()
    source_port_range: str | None = None
    source_port_ranges: tuple[str, ...] = ()
    destination_port_range: str | None = None
    destination_port_ranges: tuple[str, ...] = ()
    destination_address_prefix: str | None = None
    destination_address_prefixes: tuple[str, ...] = ()
    destination_asgs: tuple[str, ...] = ()
    description: str | None = None
    is_default: bool = False
    source_ports: PortSet = PortSet.ALL  # parsed sourcePortRange(s): a Deny shadows only these client ports

    @property
    def inbound(self) -> bool:
        return self.direction == INBOUND

    @property
    def allows(self) -> bool:
        return self.access == ALLOW

    @property
    def carries_tcp(self) -> bool:
        return self.protocol in TCP_CAPABLE

    @property
    def source_texts(self) -> list[str]:
        """Source tokens as written, ASGs shown by name: what a person recognises in the portal."""
        out = [s.text for s in self.sources]
        out.extend("asg:" + asg.rstrip("/").rsplit("/", 1)[-1] for asg in self.source_asgs)
        return out

    def to_arm(self) -> dict[str, Any]:
        """The ARM REST body of this rule (``name`` + ``properties``), as a PUT would send it."""
        props: dict[str, Any] = {"protocol": self.protocol}
        if self.description is not None:
            props["description"] = self.description
        _put_single_or_plural(props, "sourcePortRange", "sourcePortRanges", self.source_port_range,
                              self.source_port_ranges)
        _put_single_or_plural(props, "destinationPortRange", "destinationPortRanges",
                              self.destination_port_range, self.destination_port_ranges)
        _put_single_or_plural(props, "sourceAddressPrefix", "sourceAddressPrefixes",
                              self.source_address_prefix, self.source_address_prefixes)
        _put_single_or_plural(props, "destinationAddressPrefix", "destinationAddressPrefixes",
                              self.destination_address_prefix, self.destination_address_prefixes)
        if self.source_asgs:
            props["sourceApplicationSecurityGroups"] = [{"id": a} for a in self.source_asgs]
        if self.destination_asgs:
            props["destinationApplicationSecurityGroups"] = [{"id": a} for a in self.destination_asgs]
        props.update(access=self.access, priority=self.priority, direction=self.direction)
        return {"name": self.name, "id": self.id, "properties": props}


_make_rule = fast_constructor(Rule)


def _put_single_or_plural(props: dict[str, Any], key: str, plural_key: str, single: str | None,
                          plural: tuple[str, ...]) -> None:
    if plural:
        props[plural_key] = list(plural)
    elif single is not None:
        props[key] = single


_EVALUATION_ORDER = attrgetter("priority", "is_default")


@dataclass(frozen=True, slots=True)
class Nsg:
    """A network security group with its custom and default rules and where it is attached."""

    id: str
    name: str
    rules: tuple[Rule, ...]
    default_rules: tuple[Rule, ...] = ()
    location: str | None = None
    subscription_id: str = ""
    resource_group: str = ""
    etag: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    subnet_ids: tuple[str, ...] = ()
    nic_ids: tuple[str, ...] = ()
    _sorted_inbound: tuple[Rule, ...] = field(default=(), compare=False, repr=False)

    def tag(self, name: str) -> str | None:
        """Tag value by case-insensitive name (ARM tag names are case-insensitive)."""
        low = name.lower()
        for key, value in self.tags:
            if key.lower() == low:
                return value
        return None

    @property
    def inbound_rules(self) -> tuple[Rule, ...]:
        """Inbound custom then default rules in evaluation order (priority ascending)."""
        if not self._sorted_inbound and (self.rules or self.default_rules):
            ordered = tuple(sorted((r for r in (*self.rules, *self.default_rules) if r.direction == INBOUND),
                                   key=_EVALUATION_ORDER))
            object.__setattr__(self, "_sorted_inbound", ordered)
        return self._sorted_inbound


_make_nsg = fast_constructor(Nsg)


# --- resource ids ----------------------------------------------------------------------------------

def split_resource_id(resource_id: str) -> dict[str, str]:
    """Lower-cased ARM id segments: ``{"subscriptions": ..., "resourcegroups": ..., ...}``."""
    parts = [p for p in resource_id.split("/") if p]
    out: dict[str, str] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        out.setdefault(key.lower(), value)
    return out


def subscription_and_group(resource_id: str) -> tuple[str, str]:
    """``split_resource_id``'s subscription and resource group ("" when absent), read straight from the head of
    a canonical id (``/subscriptions/S/resourceGroups/G/...``: the first two pairs); any other id is split."""
    head = resource_id.split("/", 5)
    if len(head) >= 5 and not head[0] and head[2] and head[4] and head[1].lower() == "subscriptions" \
            and head[3].lower() == "resourcegroups":
        return head[2], head[4]
    ids = split_resource_id(resource_id)
    return ids.get("subscriptions", ""), ids.get("resourcegroups", "")


# --- parsing ---------------------------------------------------------------------------------------

def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise InputError(f"missing required field {key!r} in {where}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"field {key!r} in {where} must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", list: "a list", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _optional_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


_ONLY_STR = {str}


def _str_list(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None or value == []:
        return ()
    if type(value) is list and set(map(type, value)) == _ONLY_STR:  # checked in C: the common case
        return tuple(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"field {key!r} must be a list of strings")
    return tuple(value)


def _id_list(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InputError(f"field {key!r} must be a list of objects with an 'id'")
    out = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            raise InputError(f"every entry of {key!r} must be an object with a string 'id'")
        out.append(item["id"])
    return tuple(out)


def _enum(value: Any, allowed: Mapping[str, str], key: str) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise InputError(f"invalid {key} {value!r}: expected one of {sorted(set(allowed.values()))}")
    return allowed[value.lower()]


_DIRECTIONS = {"inbound": INBOUND, "outbound": OUTBOUND}
_ACCESS = {"allow": ALLOW, "deny": DENY}


def parse_rule(obj: Any, *, nsg_id: str, default: bool = False, flattened: bool = False,
               extra_tags: frozenset[str] = frozenset(), strict: bool = True) -> Rule:
    """Parse one rule in ARM shape (``properties`` nested) or ``az`` shape (``flattened=True``).

    ``strict``: reject fields outside the known API schema (user files, PUT bodies). Pass ``False`` for data
    read from Azure (ARM, Resource Graph, SDK models): new API versions add fields, and one unknown field
    must not turn an estate into ``Error`` rows; the field is logged once per process and the rule evaluated.
    """
    if type(obj) is not dict and not isinstance(obj, Mapping):  # exact-type test first: the hot path
        raise InputError(f"a security rule must be an object, got {type(obj).__name__}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise InputError("security rule without a 'name'")
    try:
        if flattened:
            props: Mapping[str, Any] = obj
            if not _AZ_RULE_KEYS.issuperset(obj):
                _unknown_fields(set(obj) - _AZ_RULE_KEYS, strict)
        else:
            props = obj.get("properties")
            if type(props) is not dict and not isinstance(props, Mapping):
                raise InputError("missing required field 'properties' (or pass the az CLI flattened shape)")
            if not RULE_ENVELOPE_KEYS.issuperset(obj) or not RULE_PROPERTY_KEYS.issuperset(props):
                _unknown_fields((set(obj) - RULE_ENVELOPE_KEYS) | (set(props) - RULE_PROPERTY_KEYS), strict)
        return _build_rule(name, obj, props, nsg_id, default, extra_tags)
    except InputError as exc:
        raise exc.located(rule=name) from None


_AZ_RULE_KEYS = RULE_PROPERTY_KEYS | AZ_RULE_EXTRA_KEYS


def _parse_rules(raw: list[Any], nsg_id: str, default: bool, flattened: bool, extra_tags: frozenset[str],
                 strict: bool) -> tuple[Rule, ...]:
    """:func:`parse_rule` over a list: a rule in ARM shape with only known fields (nearly all) goes straight
    to the rule builder, as parse_rule would send it; anything else through parse_rule itself."""
    out = []
    envelope_keys, layouts = RULE_ENVELOPE_KEYS, _LAYOUTS
    for obj in raw:
        if not flattened and type(obj) is dict:
            name, props = obj.get("name"), obj.get("properties")
            if type(name) is str and name and type(props) is dict and envelope_keys.issuperset(obj):
                keys = tuple(props)
                pick = layouts.get(keys)
                if pick is None:
                    pick = _layout(keys)
                if pick:  # only known fields: the values of _FAST_FIELDS, in C, as map(props.get, ...) reads them
                    try:
                        out.append(_build_rule(name, obj, props, nsg_id, default, extra_tags,
                                               pick((*props.values(), None))))
                    except InputError as exc:
                        raise exc.located(rule=name) from None
                    continue
        out.append(parse_rule(obj, nsg_id=nsg_id, default=default, flattened=flattened, extra_tags=extra_tags,
                              strict=strict))
    return tuple(out)


_LOGGED_FIELDS: set[str] = set()
# The key order of a rule's properties object -> an itemgetter that picks the _FAST_FIELDS values out of
# ``(*props.values(), None)`` (a missing field picks the trailing None, as ``props.get`` returns), or False
# when a key is not a known property (parse_rule then decides). Exports repeat a handful of key orders.
_LAYOUTS: dict[tuple[Any, ...], Any] = {}
_LAYOUTS_MAX = 256


def _layout(keys: tuple[Any, ...]) -> Any:
    pick: Any = False
    if RULE_PROPERTY_KEYS.issuperset(keys):
        where = {key: i for i, key in enumerate(keys)}
        pick = itemgetter(*[where.get(name, len(keys)) for name in _FAST_FIELDS])
    if len(_LAYOUTS) >= _LAYOUTS_MAX:
        _LAYOUTS.clear()
    _LAYOUTS[keys] = pick
    return pick


def _unknown_fields(unknown: set[str], strict: bool) -> None:
    names = sorted(str(k) for k in unknown)
    if strict:
        raise InputError(f"unknown field(s) {names}: NSG Guard will not guess what they mean")
    fresh = [n for n in names if n not in _LOGGED_FIELDS]
    if fresh:
        _LOGGED_FIELDS.update(fresh)
        log.warning("security rules from Azure carry field(s) %s unknown to NSG Guard: evaluated without them "
                    "(logged once per process)", fresh)


# The fields the fast path reads, in one C-level pass (``map(props.get, ...)``).
_FAST_FIELDS = ("priority", "direction", "access", "protocol", "destinationPortRange", "destinationPortRanges",
                "sourcePortRange", "sourcePortRanges", "sourceAddressPrefix", "sourceAddressPrefixes",
                "sourceApplicationSecurityGroups", "destinationAddressPrefix", "destinationAddressPrefixes",
                "destinationApplicationSecurityGroups", "description")
# (direction, access, protocol, destinationPortRange(s), sourcePortRange) as written -> (direction, access,
# protocol, destination ports, source ports) as parsed. Estates repeat a few hundred of these; an entry is
# only ever made from a rule the checked path accepted, so a hit means exactly what that path would return.
_HEADS: dict[tuple[Any, ...], tuple[str, str, str, PortSet, PortSet]] = {}
_HEADS_MAX = 4096


def _build_rule(name: str, envelope: Mapping[str, Any] | None, props: Mapping[str, Any] | None, nsg_id: str,
                default: bool, extra_tags: frozenset[str], values: Sequence[Any] | None = None,
                rule_id: Any = None) -> Rule:
    """One rule of the common shape in one pass: every field read once, the repeated part (direction,
    access, protocol, single port ranges) looked up, the rest validated inline. Anything else (plural port
    ranges, ASGs, destination lists, a value of the wrong type, a first-seen head) goes to
    :func:`_build_rule_checked`, which also words every error.

    ``envelope``/``props`` None: a typed decoder read the rule (``values`` in ``_FAST_FIELDS`` order and
    ``rule_id``); the checked path then gets them as the mappings they were decoded from would read."""
    (priority, direction, access, protocol, dst_single, dst_plural, sp_single, sp_plural, src_single, src_plural,
     src_asgs, dst_prefix, dst_prefixes, dst_asgs, description) = \
        map(props.get, _FAST_FIELDS) if values is None else values  # type: ignore[union-attr]
    if envelope is not None:
        rule_id = envelope.get("id")
    if (type(priority) is not int or src_asgs is not None or dst_asgs is not None
            or (sp_plural is not None and sp_plural != [])
            or (dst_prefixes is not None and dst_prefixes != []) or (rule_id is not None and type(rule_id) is not str)
            or (description is not None and (type(description) is not str or not description))
            or (dst_prefix is not None and (type(dst_prefix) is not str or not dst_prefix))
            or (src_single is not None and (type(src_single) is not str or not src_single))):
        return _checked(name, envelope, props, values, rule_id, nsg_id, default, extra_tags)
    if not ((65000 <= priority <= 65500) if default else (100 <= priority <= 4096)):
        return _checked(name, envelope, props, values, rule_id, nsg_id, default, extra_tags)
    if dst_plural is None or dst_plural == []:
        dst_plural = ()
    elif type(dst_plural) is list:
        dst_plural = tuple(dst_plural)  # only ever found in the cache if every entry is a string
    else:
        return _checked(name, envelope, props, values, rule_id, nsg_id, default, extra_tags)
    key = (direction, access, protocol, dst_single, dst_plural, sp_single)
    try:
        head = _HEADS.get(key)
    except TypeError:  # a list or an object where a string belongs: the checked path says which
        head = None
    if head is None:
        rule = _checked(name, envelope, props, values, rule_id, nsg_id, default, extra_tags)
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[key] = (rule.direction, rule.access, rule.protocol, rule.destination_ports, rule.source_ports)
        return rule
    if src_plural is None or src_plural == []:
        if src_single is None:  # no source at all: the checked path words it
            return _checked(name, envelope, props, values, rule_id, nsg_id, default, extra_tags)
        src_plural = ()
        sources: tuple[SourceToken, ...] = (parse_source_token(src_single, extra_tags),)
    elif type(src_plural) is list and set(map(type, src_plural)) == _ONLY_STR:  # checked in C
        src_plural = tuple(src_plural)
        tokens = dict.fromkeys(((src_single,) if src_single is not None else ()) + src_plural)
        sources = tuple([parse_source_token(t, extra_tags) for t in tokens])
    else:  # not a list of strings: the checked path words it
        return _checked(name, envelope, props, values, rule_id, nsg_id, default, extra_tags)
    if dst_prefix is not None and dst_prefix != "*":
        parse_source_token(dst_prefix, extra_tags)  # validated, as the checked path does
    if rule_id is None:
        rule_id = f"{nsg_id}/{'defaultSecurityRules' if default else 'securityRules'}/{name}"
    return _make_rule(  # positional, in Rule's field order
        name, rule_id, priority, head[0], head[1], head[2], sources, head[3],
        src_single, src_plural, (), sp_single or None, (), dst_single or None, dst_plural,
        dst_prefix, (), (), description, default, head[4],
    )


def _checked(name: str, envelope: Mapping[str, Any] | None, props: Mapping[str, Any] | None,
             values: Sequence[Any] | None, rule_id: Any, nsg_id: str, default: bool,
             extra_tags: frozenset[str]) -> Rule:
    """:func:`_build_rule_checked`, given the mappings a typed decoder did not build: a missing field and a
    null one read the same there (``get``, ``_require``), so the fields as decoded are the same input."""
    if props is None:
        props = dict(zip(_FAST_FIELDS, values, strict=True))  # type: ignore[arg-type]
    if envelope is None:
        envelope = {"id": rule_id}
    return _build_rule_checked(name, envelope, props, nsg_id=nsg_id, default=default, extra_tags=extra_tags)


def _build_rule_checked(name: str, envelope: Mapping[str, Any], props: Mapping[str, Any], *, nsg_id: str,
                        default: bool, extra_tags: frozenset[str]) -> Rule:
    # Every rule the fast path does not take: each field is read once with a type check inline; the helpers
    # (_require, _optional_str, _str_list, _id_list) run only to explain what is wrong.
    get = props.get
    rule_id = envelope.get("id")
    if rule_id is None:
        # ARM assigns exactly this id; PUT bodies and hand-written files simply omit it.
        rule_id = f"{nsg_id}/{'defaultSecurityRules' if default else 'securityRules'}/{name}"
    elif type(rule_id) is not str:
        raise InputError("field 'id' must be a string")
    priority = get("priority")
    if type(priority) is not int:
        _require(props, "priority", int, "rule properties")
    v = get("direction")
    direction = _DIRECTIONS.get(v.lower()) if type(v) is str else None
    if direction is None:
        direction = _enum(_require(props, "direction", str, "rule properties"), _DIRECTIONS, "direction")
    v = get("access")
    access = _ACCESS.get(v.lower()) if type(v) is str else None
    if access is None:
        access = _enum(_require(props, "access", str, "rule properties"), _ACCESS, "access")
    v = get("protocol")
    protocol = PROTOCOLS.get(v.lower()) if type(v) is str else None
    if protocol is None:
        protocol = _enum(_require(props, "protocol", str, "rule properties"), PROTOCOLS, "protocol")
    low, high = (65000, 65500) if default else (100, 4096)
    if not low <= priority <= high:
        raise InputError(f"invalid priority {priority}: expected {low}-{high}")

    dst_single = get("destinationPortRange")
    if dst_single is not None and (type(dst_single) is not str or not dst_single):
        dst_single = _optional_str(props, "destinationPortRange")
    dst_plural = get("destinationPortRanges")
    dst_plural = () if dst_plural is None or dst_plural == [] else _str_list(props, "destinationPortRanges")
    if dst_single is None and not dst_plural:
        raise InputError("missing required field 'destinationPortRange' or 'destinationPortRanges'")
    if dst_plural:
        destination_ports = PortSet.of(dst_plural)
        if dst_single is not None:
            destination_ports = destination_ports | PortSet.parse(dst_single)
    else:
        destination_ports = PortSet.parse(dst_single)  # type: ignore[arg-type]

    # Source ports: the client's choice. A Deny shadows only the source ports it names (docs §2.2).
    source_ports = PortSet.ALL
    src_port_single = get("sourcePortRange")
    if src_port_single is not None and (type(src_port_single) is not str or not src_port_single):
        src_port_single = _optional_str(props, "sourcePortRange")
    src_port_plural = get("sourcePortRanges")
    src_port_plural = () if src_port_plural is None or src_port_plural == [] else _str_list(props, "sourcePortRanges")
    if src_port_plural:
        source_ports = PortSet.of(src_port_plural)
        if src_port_single is not None:
            source_ports = source_ports | PortSet.parse(src_port_single)
    elif src_port_single is not None and src_port_single != "*":
        source_ports = PortSet.parse(src_port_single)

    src_single = get("sourceAddressPrefix")
    if src_single is not None and (type(src_single) is not str or not src_single):
        src_single = _optional_str(props, "sourceAddressPrefix")
    src_plural = get("sourceAddressPrefixes")
    src_plural = () if src_plural is None or src_plural == [] else _str_list(props, "sourceAddressPrefixes")
    src_asgs = get("sourceApplicationSecurityGroups")
    src_asgs = () if src_asgs is None else _id_list(props, "sourceApplicationSecurityGroups")
    if src_single is None and not src_plural and not src_asgs:
        raise InputError("rule has no source: set 'sourceAddressPrefix', 'sourceAddressPrefixes' or "
                         "'sourceApplicationSecurityGroups'")
    if src_plural:
        tokens = dict.fromkeys(((src_single,) if src_single is not None else ()) + src_plural)
        sources = tuple(parse_source_token(t, extra_tags) for t in tokens)
    else:
        sources = (parse_source_token(src_single, extra_tags),) if src_single is not None else ()

    # Destinations: same grammar as sources, validated, never guessed.
    dst_prefix = get("destinationAddressPrefix")
    if dst_prefix is not None:
        if type(dst_prefix) is not str or not dst_prefix:
            dst_prefix = _optional_str(props, "destinationAddressPrefix")
        if dst_prefix is not None and dst_prefix != "*":
            parse_source_token(dst_prefix, extra_tags)
    dst_prefixes = get("destinationAddressPrefixes")
    if dst_prefixes is None or dst_prefixes == []:
        dst_prefixes = ()
    else:
        dst_prefixes = _str_list(props, "destinationAddressPrefixes")
        for token in dst_prefixes:
            parse_source_token(token, extra_tags)
    dst_asgs = get("destinationApplicationSecurityGroups")
    dst_asgs = () if dst_asgs is None else _id_list(props, "destinationApplicationSecurityGroups")
    description = get("description")
    if description is not None and (type(description) is not str or not description):
        description = _optional_str(props, "description")
    return _make_rule(  # positional, in Rule's field order
        name, rule_id, priority, direction, access, protocol, sources, destination_ports,
        src_single, src_plural, src_asgs, src_port_single, src_port_plural, dst_single, dst_plural,
        dst_prefix, dst_prefixes, dst_asgs, description, default, source_ports,
    )


def _parse_tags(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise InputError("field 'tags' must be an object of string values")
    return tuple(sorted((str(k), v) for k, v in value.items()))


def parse_nsg(obj: Any, extra_tags: frozenset[str] = frozenset(), *, strict: bool = True) -> Nsg:
    """Parse one NSG in ARM/Resource Graph shape, ``az`` CLI shape, or an azure-mgmt-network model.

    ``strict`` as in :func:`parse_rule`: ``True`` for user files, ``False`` for data read from Azure.
    Incomplete objects are input errors, never "compliant": no ``properties`` and no ``securityRules``
    (e.g. ``az ... --query "[].{name:name,id:id}"``), or ``securityRules: null``.
    """
    # azure-mgmt-network >= 26 models are Mappings in REST shape already; older (msrest) models
    # serialize to that shape. Either way one parser serves every source.
    if not isinstance(obj, Mapping) and hasattr(obj, "serialize"):
        obj = obj.serialize(keep_readonly=True)
    if not isinstance(obj, Mapping):
        raise InputError(f"an NSG must be a JSON object, got {type(obj).__name__}")
    name = obj.get("name")
    label = name if isinstance(name, str) and name else "<unnamed>"
    try:
        rtype = obj.get("type")
        if rtype is not None and (not isinstance(rtype, str) or rtype.lower() != NSG_TYPE):
            raise InputError(f"not a network security group (type {rtype!r})")
        name = _require(obj, "name", str, "the NSG")
        nsg_id = _require(obj, "id", str, "the NSG")
        flattened = "properties" not in obj
        if flattened and "securityRules" not in obj:
            raise InputError("incomplete NSG: no 'properties' and no 'securityRules' (was it exported with a "
                             "--query that dropped them?)")
        props = obj if flattened else obj["properties"]
        if not isinstance(props, Mapping):
            raise InputError("field 'properties' must be an object")
        if not flattened and "securityRules" in obj:
            raise InputError("both 'properties' and a top-level 'securityRules': ambiguous shape")
        if "securityRules" not in props:
            raise InputError("incomplete NSG: 'properties' has no 'securityRules'")
        raw_rules = props.get("securityRules")
        if raw_rules is None:
            raise InputError("incomplete NSG: 'securityRules' is null (an NSG without rules has [])")
        if not isinstance(raw_rules, list):
            raise InputError("field 'securityRules' must be a list")
        raw_defaults = props.get("defaultSecurityRules") or []
        if not isinstance(raw_defaults, list):
            raise InputError("field 'defaultSecurityRules' must be a list")
        rules = _parse_rules(raw_rules, nsg_id, False, flattened, extra_tags, strict)
        defaults = _parse_rules(raw_defaults, nsg_id, True, flattened, extra_tags, strict)
        _check_unique_priorities(rules)
        sub = obj.get("subscriptionId")
        rg = obj.get("resourceGroup")
        if not sub or not rg:
            id_sub, id_rg = subscription_and_group(nsg_id)
            sub = sub or id_sub
            rg = rg or id_rg
        etag = obj.get("etag")
        location = obj.get("location")
        return _make_nsg(  # positional, in Nsg's field order
            nsg_id, name, rules, defaults, location if isinstance(location, str) else None, str(sub), str(rg),
            etag if isinstance(etag, str) else None, _parse_tags(obj.get("tags")), _id_list(props, "subnets"),
            _id_list(props, "networkInterfaces"), (),
        )
    except InputError as exc:
        raise exc.located(nsg=label) from None


def typed_nsg_builder(extra_tags: frozenset[str], pick: Any) -> Callable[[Any], Nsg]:
    """``build(doc) -> Nsg``: the :class:`Nsg` that :func:`parse_nsg` builds, from an NSG a typed decoder
    already checked the shape and types of (``shared/app/typednsg.py``): ``doc`` has ``name``, ``id``, ``type``
    (str or None), ``location``, ``etag``, ``tags`` (str -> str, or None), ``subscriptionId``, ``resourceGroup``
    and ``properties`` with ``securityRules`` (a list), ``defaultSecurityRules``, ``subnets`` and
    ``networkInterfaces`` (lists or None); each rule ``name``, ``id`` (str or None) and ``properties``, whose
    :data:`_FAST_FIELDS` ``pick`` reads at once, typed as in SecurityRulePropertiesFormat. ``build`` raises
    InputError for anything :func:`parse_nsg` might reject (the caller then parses the NSG's dict, which says
    what is wrong), so it never words an error of its own.

    A rule of the common shape is built inline: its head found in :data:`_HEADS`, its address tokens in a
    cache of this builder filled from :func:`parse_source_token`; anything else goes through
    :func:`_build_rule`, the dict path's own rule builder, given the same values."""
    tokens: dict[str, SourceToken] = {}  # address token -> parse_source_token(token, extra_tags)
    singles: dict[str, tuple[SourceToken]] = {}  # one address token -> the sources of a rule with only it
    heads = _HEADS
    make_rule = _make_rule
    build_rule = _build_rule

    def rules_of(raw: Sequence[Any], nsg_id: str, default: bool) -> tuple[Rule, ...]:
        low, high = (65000, 65500) if default else (100, 4096)
        out = []
        for obj in raw:
            name = obj.name
            if not name:
                raise InputError("security rule without a 'name'")
            rule_id = obj.id
            values = pick(obj.properties)
            (priority, direction, access, protocol, dst_single, dst_plural, sp_single, sp_plural, src_single,
             src_plural, src_asgs, dst_prefix, dst_prefixes, dst_asgs, description) = values
            head = None
            if (low <= priority <= high and not src_asgs and not dst_asgs and not sp_plural and not dst_prefixes
                    and description != "" and src_single != "" and dst_prefix != ""):
                dst_plural = tuple(dst_plural) if dst_plural else ()
                head = heads.get((direction, access, protocol, dst_single, dst_plural, sp_single))
            if head is not None and (src_single is not None or src_plural):
                if src_plural:
                    src_plural = tuple(src_plural)
                    texts = dict.fromkeys(((src_single,) if src_single is not None else ()) + src_plural)
                    sources = tuple([tokens.get(t) or _token(tokens, t, extra_tags) for t in texts])
                else:
                    sources = singles.get(src_single)  # type: ignore[assignment]
                    if sources is None:
                        sources = (tokens.get(src_single) or _token(tokens, src_single, extra_tags),)
                        if len(singles) >= _TOKENS_MAX:
                            singles.clear()
                        singles[src_single] = sources
                    src_plural = ()
                if dst_prefix is not None and dst_prefix != "*" and dst_prefix not in tokens:
                    _token(tokens, dst_prefix, extra_tags)  # validated, as the checked path does
                if rule_id is None:
                    rule_id = f"{nsg_id}/{'defaultSecurityRules' if default else 'securityRules'}/{name}"
                out.append(make_rule(  # positional, in Rule's field order, as _build_rule builds it
                    name, rule_id, priority, head[0], head[1], head[2], sources, head[3],
                    src_single, src_plural, (), sp_single or None, (), dst_single or None,
                    dst_plural, dst_prefix, (), (), description, default, head[4],
                ))
            else:  # string lists as the dict path reads them (a typed decoder may give tuples)
                values = tuple([list(v) if type(v) is tuple else v for v in values])
                out.append(build_rule(name, None, None, nsg_id, default, extra_tags, values, rule_id))
        return tuple(out)

    def build(doc: Any) -> Nsg:
        rtype = doc.type
        if rtype is not None and rtype.lower() != NSG_TYPE:
            raise InputError("not a network security group")
        nsg_id = doc.id
        props = doc.properties
        rules = rules_of(props.securityRules, nsg_id, False)
        defaults = props.defaultSecurityRules
        defaults = rules_of(defaults, nsg_id, True) if defaults else ()
        _check_unique_priorities(rules)
        sub = doc.subscriptionId
        rg = doc.resourceGroup
        if not sub or not rg:
            id_sub, id_rg = subscription_and_group(nsg_id)
            sub = sub or id_sub
            rg = rg or id_rg
        etag = doc.etag
        location = doc.location
        tags = doc.tags
        subnets = props.subnets
        nics = props.networkInterfaces
        return _make_nsg(  # positional, in Nsg's field order, as parse_nsg builds it
            nsg_id, doc.name, rules, defaults, location if isinstance(location, str) else None, str(sub),
            str(rg), etag if isinstance(etag, str) else None, tuple(sorted(tags.items())) if tags else (),
            tuple([s.id for s in subnets]) if subnets else (), tuple([n.id for n in nics]) if nics else (), (),
        )

    return build


_TOKENS_MAX = 65536


def _token(cache: dict[str, SourceToken], text: str, extra_tags: frozenset[str]) -> SourceToken:
    token = parse_source_token(text, extra_tags)  # raises InputError for a token the checked path rejects
    if len(cache) >= _TOKENS_MAX:
        cache.clear()
    cache[text] = token
    return token


def _check_unique_priorities(rules: Sequence[Rule]) -> None:
    names = {r.name.lower() for r in rules}
    slots = {(r.direction, r.priority) for r in rules}
    if len(names) == len(rules) and len(slots) == len(rules):
        return  # the common case, checked with two set builds; the loop below only explains a clash
    seen: dict[tuple[str, int], str] = {}
    seen_names: set[str] = set()
    for rule in rules:
        if rule.name.lower() in seen_names:
            raise InputError("rule name used twice (names are case-insensitive in Azure)", rule=rule.name)
        seen_names.add(rule.name.lower())
        key = (rule.direction, rule.priority)
        if key in seen:
            raise InputError(f"priority {rule.priority} is used by both {seen[key]!r} and {rule.name!r} "
                             f"({rule.direction}); Azure requires unique priorities per direction",
                             rule=rule.name)
        seen[key] = rule.name


def same_rule(a: Mapping[str, Any], b: Mapping[str, Any], nsg_id: str) -> bool:
    """Two ARM rule bodies mean the same rule (parsed and normalised: casing, empty lists, read-only fields)."""
    try:
        ra = parse_rule({"name": a["name"], "properties": a["properties"]}, nsg_id=nsg_id, strict=False)
        rb = parse_rule({"name": b["name"], "properties": b["properties"]}, nsg_id=nsg_id, strict=False)
    except (InputError, KeyError, TypeError):
        return False
    return ra.name.lower() == rb.name.lower() and ra.to_arm()["properties"] == rb.to_arm()["properties"]


def iter_nsg_documents(data: Any) -> Iterator[Any]:
    """Yield raw NSG objects from any supported document: one NSG, a list, ``{"value": [...]}`` (ARM
    page) or ``{"data": [...]}`` (Resource Graph response)."""
    if isinstance(data, list):
        yield from data
        return
    if isinstance(data, Mapping):
        for key in ("value", "data"):
            if key in data and "id" not in data:
                items = data[key]
                if not isinstance(items, list):
                    raise InputError(f"field {key!r} must be a list of NSGs")
                yield from items
                return
        yield data
        return
    raise InputError(f"expected an NSG, a list of NSGs or a page of NSGs, got {type(data).__name__}")


def parse_document(data: Any, extra_tags: frozenset[str] = frozenset(), *, strict: bool = True) -> list[Nsg]:
    return [parse_nsg(item, extra_tags, strict=strict) for item in iter_nsg_documents(data)]
