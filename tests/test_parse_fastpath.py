"""The one-pass rule parser (``model._build_rule``) against the checked parser it short-cuts (issue 15).

The fast path reads every field at once and looks the repeated part of a rule up in a cache filled only
from rules the checked path accepted. These properties hold it to that path exactly: for any properties
object (valid values, near misses, wrong types), parsing it twice through the public parser (the second
time the cache is warm) gives the same Rule as the checked path, or the same error.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core import model
from shared.core.errors import InputError
from shared.core.model import _build_rule_checked, parse_nsg, parse_rule

NSG_ID = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n"
ODD = st.sampled_from([None, "", " ", 22, 22.0, True, [], ["22"], {}, {"id": "x"}])
PORTS = ["*", "22", "0-65535", "20-30", "3389", "Any", " 22 ", ""]
BAD_PORTS = ["65536", "1-", "x", "5-1"]
ADDRESSES = ["*", "", "Internet", "AzureCloud", "AzureCloud.westeurope", "VirtualNetwork", "10.0.0.0/8", "0.0.0.0/0",
             "::/0", "1.2.3.4", "NewTag2099", "Any", "8.8.8.0/24", "2a01:111::/32"]
BAD_ADDRESSES = ["1.2.3.0/33", "Internet.WestEurope", " "]
ASGS = st.lists(st.fixed_dictionaries({"id": st.sampled_from(["/asg/a", "/asg/b"])}), min_size=1, max_size=2)


def field(good: list[Any] | st.SearchStrategy[Any], bad: list[Any] = ()) -> st.SearchStrategy[Any]:
    """Mostly (19 in 20) a value Azure accepts, else a near miss or a value of the wrong type or shape."""
    good_values = st.sampled_from(good) if isinstance(good, list) else good
    bad_values = st.one_of(st.sampled_from(bad), ODD) if bad else ODD
    return st.tuples(st.integers(0, 99), good_values, bad_values).map(lambda t: t[2] if t[0] >= 95 else t[1])


def lists_of(good: list[str], bad: list[str], min_size: int = 0) -> st.SearchStrategy[Any]:
    return st.lists(field(good, bad), min_size=min_size, max_size=3)


REQUIRED = {  # present in (almost) every rule: the fast path's ground
    "priority": field([100, 101, 4096, 300, 300, 65000, 65500], [4097, 99, 0, -1, 2**70]),
    "direction": field(["Inbound", "Outbound", "inbound", "OUTBOUND"], ["Sideways"]),
    "access": field(["Allow", "Deny", "allow"], ["Permit"]),
    "protocol": field(["Tcp", "Udp", "*", "Icmp", "Esp", "Ah", "Any", "tcp"], ["Gre"]),
    "destinationPortRange": field(PORTS, BAD_PORTS),
    "sourcePortRange": field(PORTS, BAD_PORTS),
    "sourceAddressPrefix": field(ADDRESSES, BAD_ADDRESSES),
    "destinationAddressPrefix": field(ADDRESSES, BAD_ADDRESSES),
}
OPTIONAL = {
    "destinationPortRanges": field(st.one_of(st.just([]), st.none(), lists_of(PORTS, BAD_PORTS, 1))),
    "sourcePortRanges": field(st.one_of(st.just([]), st.none(), lists_of(PORTS, BAD_PORTS, 1))),
    "sourceAddressPrefixes": field(st.one_of(st.just([]), lists_of(ADDRESSES, BAD_ADDRESSES, 1))),
    "sourceApplicationSecurityGroups": field(ASGS),
    "destinationAddressPrefixes": field(st.one_of(st.just([]), lists_of(ADDRESSES, BAD_ADDRESSES))),
    "destinationApplicationSecurityGroups": field(ASGS),
    "description": field(["why", "x" * 40]),
    "provisioningState": st.just("Succeeded"),
}
PROPS = st.builds(lambda required, optional, dropped: {k: v for k, v in {**required, **optional}.items()
                                                        if k not in dropped},
                  st.fixed_dictionaries(REQUIRED), st.fixed_dictionaries({}, optional=OPTIONAL),
                  st.tuples(st.integers(0, 99), st.sampled_from(sorted(REQUIRED))).map(
                      lambda t: {t[1]} if t[0] >= 90 else set()))


def outcome(fn: Any) -> Any:
    try:
        return fn()
    except InputError as exc:
        return ("error", str(exc))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=PROPS, default=st.booleans(), with_id=st.booleans(), extra=st.sampled_from([frozenset(),
                                                                                        frozenset({"newtag2099"})]))
def test_fast_rule_parser_equals_the_checked_parser(props: dict[str, Any], default: bool, with_id: bool,
                                                    extra: frozenset[str]) -> None:
    body: dict[str, Any] = {"name": "r1", "properties": props}
    if with_id:
        body["id"] = f"{NSG_ID}/securityRules/r1"
    expected = outcome(lambda: _build_rule_checked("r1", body, props, nsg_id=NSG_ID, default=default,
                                                   extra_tags=extra))
    if isinstance(expected, tuple):
        expected = ("error", str(InputError(expected[1]).located(rule="r1")))
    # Warm the cache with this rule's head (direction, access, protocol, ports) on a rule that is otherwise
    # plain, so the fast path meets whatever else this one holds.
    plain = {k: v for k, v in props.items() if k in ("priority", "direction", "access", "protocol",
                                                     "destinationPortRange", "destinationPortRanges",
                                                     "sourcePortRange")}
    outcome(lambda: parse_rule({"name": "warm", "properties": {**plain, "sourceAddressPrefix": "*"}},
                               nsg_id=NSG_ID, default=default, extra_tags=extra))
    for _ in range(2):
        got = outcome(lambda: parse_rule(body, nsg_id=NSG_ID, default=default, extra_tags=extra))
        assert got == expected
        if not isinstance(got, tuple):  # every field, also those equality leaves out
            assert all(getattr(got, f) == getattr(expected, f) for f in model.Rule.__slots__)
    # The same rule inside an NSG (parse_nsg's loop hands plain rules straight to the builder).
    key = "defaultSecurityRules" if default else "securityRules"
    doc = {"name": "n", "id": NSG_ID, "properties": {"securityRules": [], key: [body]}}
    in_nsg = outcome(lambda: parse_nsg(doc, extra))
    if isinstance(expected, tuple):
        assert isinstance(in_nsg, tuple) and expected[1] in in_nsg[1]
    else:
        assert not isinstance(in_nsg, tuple)
        assert (in_nsg.default_rules if default else in_nsg.rules) == (expected,)


@pytest.mark.parametrize("spelling", ["tcp", "TCP", "Tcp"])
def test_fast_rule_parser_normalises_like_the_checked_one(spelling: str) -> None:
    props = {"priority": 100, "direction": "inbound", "access": "allow", "protocol": spelling,
             "destinationPortRanges": ["22", "3389"], "destinationPortRange": "", "sourcePortRange": "",
             "sourceAddressPrefix": "Internet"}
    rules = [parse_rule({"name": f"r{i}", "properties": props}, nsg_id=NSG_ID) for i in range(2)]
    for rule in rules:
        assert (rule.protocol, rule.direction, rule.access) == ("Tcp", "Inbound", "Allow")
        assert rule.destination_port_range is None and rule.source_port_range is None
        assert rule.destination_port_ranges == ("22", "3389")
        assert rule.destination_ports.to_tokens() == ["22", "3389"]


SEGMENTS = st.sampled_from(["", "subscriptions", "SUBSCRIPTIONS", "resourceGroups", "resourcegroups", "s", "rg",
                            "providers", "Microsoft.Network", " "])


@settings(max_examples=500)
@given(st.lists(SEGMENTS, max_size=9))
def test_subscription_and_group_reads_what_split_resource_id_reads(parts: list[str]) -> None:
    nsg_id = "/".join(parts)
    ids = model.split_resource_id(nsg_id)
    assert model.subscription_and_group(nsg_id) == (ids.get("subscriptions", ""), ids.get("resourcegroups", ""))


@pytest.mark.parametrize(("nsg_id", "expected"), [
    (NSG_ID, ("s", "r")),
    ("/SUBSCRIPTIONS/S1/RESOURCEGROUPS/R1/providers/x/y/z", ("S1", "R1")),
    ("//subscriptions//s/resourceGroups/r", ("s", "r")),  # empty segments: the split path
    ("/subscriptions/s/providers/x", ("s", "")),
    ("n", ("", "")),
])
def test_subscription_and_group_of_an_nsg_without_the_columns(nsg_id: str, expected: tuple[str, str]) -> None:
    nsg = parse_nsg({"name": "n", "id": nsg_id, "properties": {"securityRules": []}})
    assert (nsg.subscription_id, nsg.resource_group) == expected


def test_rule_fields_read_by_key_order_match_any_order_and_unknown_fields_still_fail() -> None:
    """parse_nsg reads a rule's fields through a picker cached per key order (model._LAYOUTS): every order of
    the same fields gives the same rules, and a key order with an unknown field is never taken as known."""
    import itertools

    props = {"priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
             "destinationPortRange": "22", "sourcePortRange": "*", "sourceAddressPrefix": "Internet",
             "destinationAddressPrefix": "*", "description": "d"}
    expected = parse_rule({"name": "r", "properties": props}, nsg_id=NSG_ID)
    for order in itertools.islice(itertools.permutations(props), 0, 5000, 97):
        body = {"name": "r", "properties": {k: props[k] for k in order}}
        nsg = parse_nsg({"name": "n", "id": NSG_ID, "properties": {"securityRules": [body]}})
        assert nsg.rules == (expected,)
        assert all(getattr(nsg.rules[0], f) == getattr(expected, f) for f in model.Rule.__slots__)
    odd = {"name": "r", "properties": {**props, "sourcePortRanges": [], "futureField": 1}}
    for _ in range(2):  # cold, then with the key order cached
        with pytest.raises(InputError, match="futureField"):
            parse_nsg({"name": "n", "id": NSG_ID, "properties": {"securityRules": [odd]}})
    lenient = parse_nsg({"name": "n", "id": NSG_ID, "properties": {"securityRules": [odd]}}, strict=False)
    assert lenient.rules == (expected,)
