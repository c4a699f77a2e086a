"""The typed reader (``shared/app/typednsg.py``) against the strict dict parser it short-cuts (issue 15).

For any NSG document (any key order, missing, extra, null or duplicate fields, values of the wrong type, the
other shapes), the typed parser either declines (None: the caller parses the dicts) or returns exactly the Nsg
``parse_nsg(json.loads(text))`` returns, every slot of the NSG and of each rule; it never takes a document the
strict parser rejects. Through ``scan``, a file read with it gives the same results and the same errors as
without it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.app import jsonstream, scan, typednsg
from shared.app.typednsg import typed_parser
from shared.core.errors import InputError
from shared.core.model import RULE_ENVELOPE_KEYS, RULE_PROPERTY_KEYS, Nsg, Rule, parse_nsg
from shared.core.policy import Engine, Policy
from tests.test_parse_fastpath import ADDRESSES, NSG_ID, ODD, PORTS, PROPS

EXTRA_TAGS = [frozenset(), frozenset({"newtag2099"})]
PARSERS = {extra: typed_parser(extra) for extra in EXTRA_TAGS}  # warm caches across examples, as in a scan


def outcome(fn: Any) -> Any:
    try:
        return fn()
    except InputError as exc:
        return ("error", str(exc))


def render(pairs: list[tuple[str, Any]]) -> str:
    """A JSON object from (key, value) pairs, duplicates kept (json.loads keeps the last)."""
    return "{" + ",".join(f"{json.dumps(k)}:{v if isinstance(v, Raw) else json.dumps(v)}" for k, v in pairs) + "}"


class Raw(str):
    """JSON text already rendered (a nested object with its own duplicates)."""


@st.composite
def objects(draw: Any, fields: dict[str, Any], *, unknown: list[str], odd_rate: int = 3) -> Raw:
    """``fields`` in a random order, sometimes one dropped, nulled, given a wrong type, duplicated (an earlier
    copy with another value) or joined by an unknown key."""
    pairs = list(fields.items())
    random.Random(draw(st.integers(0, 2**16))).shuffle(pairs)
    roll = draw(st.integers(0, 99)) - 50  # odd in the middle of the range (hypothesis favours the ends)
    if roll < 0:
        pass
    elif pairs and roll < odd_rate:
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))
    elif pairs and roll < 2 * odd_rate:
        i = draw(st.integers(0, len(pairs) - 1))
        pairs[i] = (pairs[i][0], draw(ODD))
    elif pairs and roll < 3 * odd_rate:
        i = draw(st.integers(0, len(pairs) - 1))
        pairs.insert(draw(st.integers(0, i)), (pairs[i][0], draw(ODD)))  # duplicate: the later value wins
    elif pairs and roll < 4 * odd_rate:
        i = draw(st.integers(0, len(pairs) - 1))
        pairs.insert(draw(st.integers(i + 1, len(pairs))), (pairs[i][0], draw(ODD)))  # duplicate: this one wins
    elif roll < 5 * odd_rate:
        pairs.append((draw(st.sampled_from(unknown)), draw(ODD)))
    return Raw(render(pairs))


CLEAN_PROPS = st.fixed_dictionaries({  # values Azure accepts, in shapes the fast path takes (3 in 4 rules)
    "direction": st.sampled_from(["Inbound", "Outbound", "inbound"]),
    "access": st.sampled_from(["Allow", "Deny"]),
    "protocol": st.sampled_from(["Tcp", "*", "Udp", "tcp"]),
    "sourcePortRange": st.sampled_from(["*", "1024-65535", ""]),
    "destinationPortRange": st.sampled_from(PORTS[:5]),
    "sourceAddressPrefix": st.sampled_from(ADDRESSES),
}, optional={
    "destinationPortRanges": st.lists(st.sampled_from(PORTS[:5]), max_size=3),
    "sourceAddressPrefixes": st.lists(st.sampled_from(ADDRESSES[1:]), max_size=3),
    "destinationAddressPrefix": st.sampled_from(["*", "10.0.0.0/8", "VirtualNetwork", "NewTag2099"]),
    "destinationAddressPrefixes": st.just([]),
    "sourcePortRanges": st.just([]),
    "description": st.sampled_from(["why", ""]),
    "sourceApplicationSecurityGroups": st.sampled_from([[], None]),
    "provisioningState": st.just("Succeeded"),
})


@st.composite
def rules(draw: Any, index: int, default: bool) -> Raw:
    if draw(st.integers(0, 7)) != 3:
        base = 65000 if default else 100
        props = {"priority": base + 10 * index + draw(st.integers(0, 9)), **draw(CLEAN_PROPS)}
    else:
        props = draw(PROPS)
    fields: dict[str, Any] = {
        "name": draw(st.sampled_from([f"r{index}", f"R{index}", "r0", "", 7])) if draw(st.integers(0, 19)) == 0
        else f"r{index}",
        "properties": draw(objects(props, unknown=["futureField", "securityRules"], odd_rate=1)),
    }
    if draw(st.booleans()):
        fields["id"] = f"{NSG_ID}/securityRules/r{index}" if draw(st.integers(0, 19)) else draw(ODD)
    if draw(st.booleans()):
        fields["etag"] = 'W/"1"'
        fields["type"] = "Microsoft.Network/networkSecurityGroups/securityRules"
    return draw(objects(fields, unknown=["futureField", "kind"], odd_rate=1))


@st.composite
def rule_lists(draw: Any, default: bool = False) -> Raw:
    n = draw(st.integers(0, 3))
    return Raw("[" + ",".join(draw(rules(i, default)) for i in range(n)) + "]")


@st.composite
def nsg_documents(draw: Any) -> str:
    props: dict[str, Any] = {"securityRules": draw(rule_lists())}
    if draw(st.booleans()):
        props["defaultSecurityRules"] = draw(st.one_of(rule_lists(True), rule_lists(True), st.just(Raw("[]")), ODD))
    if draw(st.booleans()):
        props["subnets"] = draw(st.sampled_from([[{"id": "/s/a"}]] * 4 + [[], [{"id": "/s/a", "x": 1}], [{"id": 5}],
                                                                     [{}], ["x"], None]))
    if draw(st.booleans()):
        props["networkInterfaces"] = [{"id": "/nic/a"}, {"id": "/nic/b"}]
    props["provisioningState"] = "Succeeded"
    fields: dict[str, Any] = {
        "name": draw(st.sampled_from(["nsg-a"] * 12 + ["", 5, None])),
        "id": draw(st.sampled_from([NSG_ID] * 12 + ["/x", "", 5])),
        "properties": draw(objects(props, unknown=["flowLogs", "resourceGuid"])),
    }
    for key, values in {
        "type": ["Microsoft.Network/networkSecurityGroups"] * 4 + ["microsoft.network/networksecuritygroups",
                                                                    "Microsoft.Compute/virtualMachines", 3, None],
        "location": ["westeurope", 3, None],
        "etag": ['W/"1"', 3],
        "tags": [{"owner": "x", "NSG-Guard-Exempt": "true"}] * 3 + [{}, {"n": 3}, [], None],
        "subscriptionId": ["sub-1", "", None, 12],
        "resourceGroup": ["rg-1", "", None],
        "securityRules": [[], None],
        "tenantId": ["t"],
    }.items():
        if draw(st.integers(0, 15 if key == "securityRules" else 3)) == 2:
            fields[key] = draw(st.sampled_from(values))
    return draw(objects(fields, unknown=["sku", "zones"], odd_rate=1))


def same_nsg(got: Nsg, expected: Nsg) -> None:
    assert type(got) is Nsg
    assert got == expected
    for name in Nsg.__slots__:
        assert getattr(got, name) == getattr(expected, name), name
    for mine, theirs in zip((*got.rules, *got.default_rules), (*expected.rules, *expected.default_rules),
                            strict=True):
        assert type(mine) is Rule
        for name in Rule.__slots__:
            assert getattr(mine, name) == getattr(theirs, name), name


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=nsg_documents(), extra=st.sampled_from(EXTRA_TAGS), fresh=st.booleans())
def test_typed_parser_gives_parse_nsgs_nsg_or_declines(text: str, extra: frozenset[str], fresh: bool) -> None:
    expected = outcome(lambda: parse_nsg(json.loads(text), extra))
    parse = typed_parser(extra) if fresh else PARSERS[extra]
    for _ in range(2):  # cold, then with its caches (and the rule heads) warm
        got = parse(text.encode())
        if got is None:
            continue  # declined: scan parses the dicts, exactly as before
        assert not isinstance(expected, tuple), f"typed parser took what parse_nsg rejects: {expected}"
        same_nsg(got, expected)
        same_nsg(got, parse_nsg(json.loads(text), extra, strict=False))


def plain_nsg(index: int, rules: int = 3) -> dict[str, Any]:
    nsg_id = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n{index}"
    body = []
    for n in range(rules):
        body.append({"name": f"r{n}", "id": f"{nsg_id}/securityRules/r{n}", "etag": 'W/"1"',
                     "type": "Microsoft.Network/networkSecurityGroups/securityRules",
                     "properties": {"provisioningState": "Succeeded", "protocol": "Tcp", "sourcePortRange": "*",
                                    "destinationPortRange": ["22", "3389", "443"][n % 3],
                                    "sourceAddressPrefix": ["Internet", "10.0.0.0/8", "*"][n % 3],
                                    "destinationAddressPrefix": "*", "access": "Allow", "priority": 100 + n,
                                    "direction": "Inbound", "sourcePortRanges": [], "destinationPortRanges": [],
                                    "sourceAddressPrefixes": [], "destinationAddressPrefixes": []}})
    return {"name": f"n{index}", "id": nsg_id, "type": "Microsoft.Network/networkSecurityGroups",
            "location": "westeurope", "etag": 'W/"1"', "tags": {"owner": "me"},
            "properties": {"securityRules": body, "defaultSecurityRules": [], "subnets": [{"id": "/s/a"}]}}


@pytest.mark.parametrize("shape", ["arm", "resource-graph", "plural-sources", "asg-empty", "asg", "no-ids"])
def test_typed_parser_takes_the_common_shapes(shape: str) -> None:
    """The fast path is taken for ARM lists and Resource Graph rows (else it would be a slower no-op)."""
    doc = plain_nsg(1)
    rule_props = doc["properties"]["securityRules"][0]["properties"]
    if shape == "resource-graph":
        doc.update(type="microsoft.network/networksecuritygroups", tenantId="t", kind="", sku=None,
                   subscriptionId="sub", resourceGroup="rg", zones=None)
    elif shape == "plural-sources":
        rule_props.pop("sourceAddressPrefix")
        rule_props["sourceAddressPrefixes"] = ["10.0.0.0/8", "Internet", "10.0.0.0/8"]
    elif shape == "asg-empty":
        rule_props["sourceApplicationSecurityGroups"] = []
    elif shape == "asg":  # the dict path's own rule builder, given the typed values
        rule_props["sourceApplicationSecurityGroups"] = [{"id": "/asg/a"}]
    elif shape == "no-ids":
        for body in doc["properties"]["securityRules"]:
            del body["id"]
    got = typed_parser()(json.dumps(doc).encode())
    assert got is not None
    same_nsg(got, parse_nsg(doc))


@pytest.mark.parametrize(("case", "edit"), [
    ("unknown rule field", lambda d: d["properties"]["securityRules"][0]["properties"].update(futureField=1)),
    ("securityRules null", lambda d: d["properties"].update(securityRules=None)),
    ("both shapes", lambda d: d.update(securityRules=[])),
    ("flattened az shape", lambda d: d.update(securityRules=d.pop("properties")["securityRules"])),
    ("priority twice", lambda d: d["properties"]["securityRules"][1]["properties"].update(priority=100)),
    ("name twice", lambda d: d["properties"]["securityRules"][1].update(name="R0")),
    ("bad token", lambda d: d["properties"]["securityRules"][0]["properties"].update(sourceAddressPrefix="1.2.3.0/33")),
    ("bad destination", lambda d: d["properties"]["securityRules"][0]["properties"].update(
        destinationAddressPrefix="Internet.WestEurope")),
    ("priority out of range", lambda d: d["properties"]["securityRules"][0]["properties"].update(priority=99)),
    ("priority float", lambda d: d["properties"]["securityRules"][0]["properties"].update(priority=100.0)),
    ("not an nsg", lambda d: d.update(type="Microsoft.Compute/virtualMachines")),
    ("tag not a string", lambda d: d.update(tags={"a": 1})),
])
def test_typed_parser_declines_what_the_strict_parser_rejects_or_words(case: str, edit: Any) -> None:
    doc = plain_nsg(1)
    edit(doc)
    parse = typed_parser()
    for _ in range(2):
        assert parse(json.dumps(doc).encode()) is None, case


def test_typed_structs_know_exactly_the_rule_fields_the_dict_parser_knows() -> None:
    assert set(typednsg.RuleProperties.__struct_fields__) == RULE_PROPERTY_KEYS
    assert set(typednsg.TypedRule.__struct_fields__) == RULE_ENVELOPE_KEYS


# --- through scan: the same results and errors with the typed reader as without it -------------------------

def hostile_list(path: Path) -> None:
    items: list[Any] = [plain_nsg(i) for i in range(30)]
    items[3]["properties"]["securityRules"][0]["properties"]["futureField"] = 1  # unknown field: an error
    items[5] = dict(items[4])  # the same NSG twice
    items[7]["properties"]["securityRules"] = None  # incomplete
    items[9] = {"name": "az", "id": "/x/az", "securityRules": items[9]["properties"]["securityRules"]}  # az shape
    items[11]["properties"]["securityRules"][2]["properties"]["priority"] = 100  # clash
    items[13] = "not an object"
    items[15]["properties"]["securityRules"][1]["properties"]["sourceAddressPrefix"] = "NewTag2099"  # unknown tag
    items[17]["name"] = ""
    items[19]["properties"]["securityRules"][0]["properties"]["sourceApplicationSecurityGroups"] = [{"id": "/a/b"}]
    items.append(dict(items[20], name="again"))  # same id as items[20] under another name
    path.write_text(json.dumps(items, indent=1), encoding="utf-8")


def run_scan(path: Path, typed: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[str]]:
    with monkeypatch.context() as m:
        if not typed:
            m.setattr(scan, "typed_parser", lambda extra_tags: None)
        errors: list[InputError] = []
        results = list(scan.scan_files([str(path)], Engine(Policy()), errors))
    return [(r.source, r.evaluation, r.attachment, r.line) for r in results], [str(e) for e in errors]


def test_scan_with_the_typed_reader_equals_scan_without_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "estate.json"
    hostile_list(path)
    seen: list[Any] = []
    real = jsonstream._iter_list_items_msgspec

    def spy(*args: Any, **kwargs: Any) -> Any:
        for item in real(*args, **kwargs):
            seen.append(type(item))
            yield item

    with monkeypatch.context() as m:
        m.setattr(jsonstream, "_iter_list_items_msgspec", spy)
        with_typed = run_scan(path, True, monkeypatch)
    assert seen.count(Nsg) >= 20  # the typed path did the work
    without = run_scan(path, False, monkeypatch)
    assert with_typed == without
    assert len(without[1]) >= 8  # and the hostile items are reported, one error each


def test_a_file_of_another_shape_stops_trying_the_typed_parser(tmp_path: Path) -> None:
    """az's flattened shape never fits the structs: after TYPED_MISSES elements in a row the reader stops
    trying (no second decode per NSG) and still yields json.load's items."""
    items = [{"name": f"n{i}", "id": f"/x/n{i}", "securityRules": []} for i in range(jsonstream.TYPED_MISSES + 5)]
    path = tmp_path / "az.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    calls = []

    def typed(data: Any) -> None:
        calls.append(1)

    assert list(jsonstream.iter_list_items(path, typed=typed)) == items
    assert len(calls) == jsonstream.TYPED_MISSES


# --- fast_constructor: the twin class never shows ----------------------------------------------------------

def test_fast_constructor_builds_real_frozen_instances() -> None:
    nsg = typed_parser()(json.dumps(plain_nsg(2)).encode())
    assert nsg is not None
    rule = nsg.rules[0]
    for obj in (nsg, rule):
        assert type(obj) is type(obj).__mro__[0] and type(obj) in (Nsg, Rule)
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.name = "x"  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(obj)) == obj
        assert copy.deepcopy(obj) == obj and hash(copy.copy(obj)) == hash(obj)
        assert repr(obj).startswith(type(obj).__name__ + "(")
    assert dataclasses.replace(rule, priority=200).priority == 200
    assert rule == parse_nsg(plain_nsg(2)).rules[0]
