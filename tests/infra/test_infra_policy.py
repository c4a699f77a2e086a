"""The Azure Policy guardrail (infra/policy/deny-internet-ssh.json), checked two ways.

1. Structure: both resource types covered, only aliases from a known list, effect parameterised.
2. Intent: a tiny interpreter of the subset of the Azure Policy language the rule uses (allOf/anyOf/not, field
   conditions, field count and value count with `where`, and template expressions in `value` conditions:
   if/or/and/equals/empty/toLower/first/last/split/int/lessOrEquals/greaterOrEquals/current/field/parameters)
   evaluates the rule against a table of NSG and security-rule resources.

The interpreter follows the documented semantics we rely on: string comparisons in conditions are
case-insensitive; an alias that does not exist on the resource reads as null/empty; inside a `count.where`
an alias path with `[*]` refers to the array member being counted, and `current(alias)` returns it;
`current(name)` returns the member of a value count. It is a model of the language, not Azure's engine:
what it proves is that the rule says what we mean; that Azure accepts and evaluates it the same way is
verified only by a real deployment (see docs/deploy.md, "Verifying with a test rule").
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POLICY_FILE = REPO / "infra" / "policy" / "deny-internet-ssh.json"

NSG = "Microsoft.Network/networkSecurityGroups"
RULE = NSG + "/securityRules"

# Aliases the rule may use (names as published for Microsoft.Network; `az provider show --namespace
# Microsoft.Network --expand "resourceTypes/aliases"` lists them). Anything else is a typo.
RULE_FIELDS = (
    "access",
    "direction",
    "protocol",
    "destinationPortRange",
    "destinationPortRanges[*]",
    "sourceAddressPrefix",
    "sourceAddressPrefixes[*]",
)
KNOWN_ALIASES = {
    "type",
    f"{NSG}/securityRules[*]",
    *(f"{NSG}/securityRules[*].{p}" for p in RULE_FIELDS),
    *(f"{RULE}/{p}" for p in RULE_FIELDS),
}


def load_policy() -> dict:
    return json.loads(POLICY_FILE.read_text())


# --------------------------------------------------------------------------------------------------
# Alias resolution
# --------------------------------------------------------------------------------------------------


def _resolve_alias(resource: dict, alias: str, scope: dict[str, object]):
    """Value of an alias for a resource; `scope` maps array-alias prefixes bound by an enclosing count."""
    if alias == "type":
        return resource.get("type")
    # innermost binding first: the longest bound prefix that the alias starts with
    for prefix in sorted(scope, key=len, reverse=True):
        if alias == prefix:
            return scope[prefix]
        if alias.startswith(prefix + "."):
            rest = alias[len(prefix) + 1 :]
            return _walk(scope[prefix], rest)
    if alias.startswith(NSG + "/securityRules[*]"):
        if resource.get("type", "").lower() != NSG.lower():
            return None
        rules = resource.get("properties", {}).get("securityRules", [])
        if alias == NSG + "/securityRules[*]":
            return rules
        rest = alias[len(NSG + "/securityRules[*].") :]
        return [_walk(r, rest) for r in rules]
    if alias.startswith(RULE + "/"):
        if resource.get("type", "").lower() != RULE.lower():
            return None
        return _walk(resource, alias[len(RULE) + 1 :])
    raise AssertionError(f"unknown alias {alias}")


def _walk(rule: dict, rest: str):
    """rest like 'access' or 'destinationPortRanges[*]' relative to a security rule (ARM shape)."""
    props = rule.get("properties", rule)
    if rest.endswith("[*]"):
        return list(props.get(rest[:-3]) or [])
    return props.get(rest)


# --------------------------------------------------------------------------------------------------
# Template expressions ("[func(args)]")
# --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<p>[(),]))"
)


def _tokens(text: str):
    pos = 0
    out = []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise AssertionError(f"cannot tokenize {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


class _Expr:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def parse(self):
        node = self._node()
        assert self.i == len(self.toks), "trailing tokens"
        return node

    def _node(self):
        kind, val = self.toks[self.i]
        self.i += 1
        if kind == "str":
            return ("lit", val[1:-1].replace("''", "'"))
        if kind == "num":
            return ("lit", int(val))
        if kind == "id":
            if val in ("true", "false"):
                return ("lit", val == "true")
            assert self.toks[self.i] == ("p", "("), f"expected ( after {val}"
            self.i += 1
            args = []
            if self.toks[self.i] != ("p", ")"):
                while True:
                    args.append(self._node())
                    if self.toks[self.i] == ("p", ","):
                        self.i += 1
                        continue
                    break
            assert self.toks[self.i] == ("p", ")"), f"expected ) closing {val}"
            self.i += 1
            return ("call", val, args)
        raise AssertionError(f"unexpected token {val}")


class PolicyError(Exception):
    """A template function failed (e.g. int('abc')): Azure reports the evaluation as an error."""


def _eval_expr(node, ctx):
    if node[0] == "lit":
        return node[1]
    _, name, args = node
    lname = name.lower()
    if lname == "if":  # lazy, like ARM's if()
        return _eval_expr(args[1] if _eval_expr(args[0], ctx) else args[2], ctx)
    if lname == "and":
        return all(_eval_expr(a, ctx) for a in args)
    if lname == "or":
        return any(_eval_expr(a, ctx) for a in args)
    vals = [_eval_expr(a, ctx) for a in args]
    if lname == "parameters":
        return ctx["params"][vals[0]]
    if lname == "current":
        key = vals[0]
        if key in ctx["names"]:
            return ctx["names"][key]
        if any(key == b or key.startswith(b + ".") for b in ctx["scope"]):
            return _resolve_alias(ctx["resource"], key, ctx["scope"])
        raise PolicyError(f"current('{key}') outside its count")
    if lname == "field":
        return _resolve_alias(ctx["resource"], vals[0], ctx["scope"])
    if lname == "empty":
        v = vals[0]
        return v is None or v == "" or v == [] or v == {}
    if lname == "equals":
        a, b = vals
        if isinstance(a, str) and isinstance(b, str):
            return a == b  # ARM equals() on strings; the rule lower-cases where it matters
        return a == b
    if lname == "tolower":
        return vals[0].lower()
    if lname == "split":
        return vals[0].split(vals[1])
    if lname == "first":
        return vals[0][0]
    if lname == "last":
        return vals[0][-1]
    if lname == "int":
        try:
            return int(str(vals[0]).strip())
        except ValueError as exc:
            raise PolicyError(str(exc)) from exc
    if lname == "lessorequals":
        return vals[0] <= vals[1]
    if lname == "greaterorequals":
        return vals[0] >= vals[1]
    if lname == "not":
        return not vals[0]
    raise AssertionError(f"function {name} not modelled")


def _value(v, ctx):
    if isinstance(v, str) and v.startswith("[") and v.endswith("]") and not v.startswith("[["):
        return _eval_expr(_Expr(v[1:-1]).parse(), ctx)
    return v


# --------------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------------


def _norm(v):
    return v.lower() if isinstance(v, str) else v


def _compare(actual, cond, ctx) -> bool:
    ops = [k for k in cond if k not in ("field", "value", "count")]
    assert len(ops) == 1, f"one operator per condition: {cond}"
    op = ops[0]
    expected = _value(cond[op], ctx)
    if op == "equals":
        return _norm(actual) == _norm(expected)
    if op == "notEquals":
        return _norm(actual) != _norm(expected)
    if op == "in":
        return _norm(actual) in {_norm(e) for e in expected}
    if op == "notIn":
        return _norm(actual) not in {_norm(e) for e in expected}
    if op == "greater":
        return actual > expected
    if op == "greaterOrEquals":
        return actual >= expected
    if op == "less":
        return actual < expected
    if op == "exists":
        return (actual not in (None, "", [])) == (str(expected).lower() == "true")
    raise AssertionError(f"operator {op} not modelled")


def evaluate(cond: dict, ctx: dict) -> bool:
    if "allOf" in cond:
        return all(evaluate(c, ctx) for c in cond["allOf"])
    if "anyOf" in cond:
        return any(evaluate(c, ctx) for c in cond["anyOf"])
    if "not" in cond:
        return not evaluate(cond["not"], ctx)
    if "count" in cond:
        return _compare(_count(cond["count"], ctx), cond, ctx)
    if "field" in cond:
        alias = cond["field"]
        actual = _resolve_alias(ctx["resource"], alias, ctx["scope"])
        if alias.endswith("[*]") and alias not in ctx["scope"] and isinstance(actual, list):
            # bare [*] outside a count: every member must satisfy (the rule avoids this; modelled anyway)
            return all(_compare(a, cond, ctx) for a in actual)
        if (
            "[*]." in alias
            and alias.split("[*].")[0] + "[*]" not in ctx["scope"]
            and isinstance(actual, list)
        ):
            return all(_compare(a, cond, ctx) for a in actual)
        return _compare(actual, cond, ctx)
    if "value" in cond:
        try:
            actual = _value(cond["value"], ctx)
        except PolicyError:
            return False  # treated as not matching; the rule is written so this never happens
        return _compare(actual, cond, ctx)
    raise AssertionError(f"condition not modelled: {cond}")


def _count(spec: dict, ctx: dict) -> int:
    if "field" in spec:
        alias = spec["field"]
        assert alias.endswith("[*]"), "field count needs an array alias"
        members = _resolve_alias(ctx["resource"], alias, ctx["scope"]) or []
        n = 0
        for m in members:
            inner = dict(ctx, scope={**ctx["scope"], alias: m})
            if "where" not in spec or evaluate(spec["where"], inner):
                n += 1
        return n
    if "value" in spec:
        members = _value(spec["value"], ctx) or []
        n = 0
        for m in members:
            inner = dict(ctx, names={**ctx["names"], spec["name"]: m})
            if "where" not in spec or evaluate(spec["where"], inner):
                n += 1
        return n
    raise AssertionError("count needs field or value")


def flags(resource: dict, params: dict | None = None) -> bool:
    """True when the policy's `if` matches, i.e. the resource would be audited/denied."""
    doc = load_policy()
    actual = {k: v.get("defaultValue") for k, v in doc["parameters"].items()}
    actual.update(params or {})
    ctx = {"resource": resource, "params": actual, "scope": {}, "names": {}}
    return evaluate(doc["policyRule"]["if"], ctx)


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------


def rule(
    name="r",
    access="Allow",
    direction="Inbound",
    protocol="Tcp",
    port="22",
    ports=None,
    src="*",
    srcs=None,
    priority=300,
):
    props = {
        "priority": priority,
        "access": access,
        "direction": direction,
        "protocol": protocol,
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "sourcePortRanges": [],
        "destinationPortRanges": list(ports or []),
        "sourceAddressPrefixes": list(srcs or []),
        "destinationAddressPrefixes": [],
    }
    if not ports:
        props["destinationPortRange"] = port
    if not srcs:
        props["sourceAddressPrefix"] = src
    return {"name": name, "properties": props}


def nsg(*rules):
    return {"type": NSG, "name": "nsg1", "properties": {"securityRules": list(rules)}}


def child(r):
    c = copy.deepcopy(r)
    c["type"] = RULE
    return c


# (id, rule kwargs, policy params, expected flagged)
CASES = [
    ("ssh-from-star", {}, None, True),
    ("ssh-from-internet", {"src": "Internet"}, None, True),
    ("ssh-from-any", {"src": "Any"}, None, True),
    ("ssh-from-ipv4-all", {"src": "0.0.0.0/0"}, None, True),
    ("ssh-from-ipv6-all", {"src": "::/0"}, None, True),
    (
        "case-insensitive",
        {"src": "internet", "protocol": "TCP", "access": "allow", "direction": "inbound"},
        None,
        True,
    ),
    ("protocol-any", {"protocol": "*"}, None, True),
    ("protocol-udp", {"protocol": "Udp"}, None, False),
    ("deny-rule", {"access": "Deny"}, None, False),
    ("outbound", {"direction": "Outbound"}, None, False),
    ("private-source", {"src": "10.0.0.0/8"}, None, False),
    ("service-tag-source", {"src": "VirtualNetwork"}, None, False),
    ("single-host-source", {"src": "203.0.113.7"}, None, False),
    ("port-star", {"port": "*"}, None, True),
    ("range-covers-22", {"port": "20-25"}, None, True),
    ("range-starts-at-22", {"port": "22-22"}, None, True),
    ("range-below", {"port": "1-21"}, None, False),
    ("range-above", {"port": "23-65535"}, None, False),
    ("other-port", {"port": "443"}, None, False),
    ("plural-ranges-hit", {"ports": ["80", "1000-2000", "21-22"]}, None, True),
    ("plural-ranges-miss", {"ports": ["80", "443", "1000-2000"]}, None, False),
    ("plural-sources-hit", {"srcs": ["10.0.0.0/8", "0.0.0.0/0"]}, None, True),
    ("plural-sources-miss", {"srcs": ["10.0.0.0/8", "192.168.0.0/16"]}, None, False),
    ("plural-both", {"ports": ["3000-3010", "22"], "srcs": ["198.51.100.0/24", "::/0"]}, None, True),
    ("mgmt-port-watched", {"port": "3389"}, {"ports": ["22", "3389", "5985", "5986", "23"]}, True),
    ("mgmt-port-not-watched", {"port": "3389"}, None, False),
    ("mgmt-range", {"port": "5980-5990"}, {"ports": ["22", "3389", "5985", "5986", "23"]}, True),
    ("custom-ssh-port", {"port": "2222"}, {"ports": ["22", "2222"]}, True),
    # Known blind spot, pinned so a change is deliberate: split CIDRs cover the internet but match no token.
    ("split-cidr-blind-spot", {"srcs": ["0.0.0.0/1", "128.0.0.0/1"]}, None, False),
]


@pytest.mark.parametrize(("case_id", "kwargs", "params", "expected"), CASES, ids=[c[0] for c in CASES])
def test_inline_rule_in_nsg(case_id, kwargs, params, expected):
    assert flags(nsg(rule(**kwargs)), params) is expected


@pytest.mark.parametrize(("case_id", "kwargs", "params", "expected"), CASES, ids=[c[0] for c in CASES])
def test_child_security_rule_resource(case_id, kwargs, params, expected):
    assert flags(child(rule(**kwargs)), params) is expected


def test_one_bad_rule_among_good_ones_flags_the_nsg():
    good = [rule(name=f"ok{i}", src="10.0.0.0/8", priority=100 + i) for i in range(5)]
    assert flags(nsg(*good)) is False
    assert flags(nsg(*good, rule(name="bad", src="Internet", priority=4000))) is True


def test_empty_nsg_and_other_types_are_not_flagged():
    assert flags(nsg()) is False
    assert flags({"type": "Microsoft.Network/networkInterfaces", "properties": {}}) is False


def test_policy_only_sees_the_rule_not_priority_shadowing():
    # A higher-priority Deny makes the Allow latent (inactive); the app reports it as `info`, the policy
    # still flags the NSG because a policy cannot order rules. Documented in docs/deploy.md.
    shadow = rule(name="deny-all-22", access="Deny", src="*", priority=100)
    assert flags(nsg(shadow, rule(name="allow", src="Internet", priority=200))) is True


# --------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------


def _walk_conditions(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk_conditions(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_conditions(v)


def test_structure_aliases_are_known_and_both_types_covered():
    doc = load_policy()
    cond = doc["policyRule"]["if"]
    fields = {c["field"] for c in _walk_conditions(cond) if "field" in c}
    assert fields <= KNOWN_ALIASES, fields - KNOWN_ALIASES
    types = {c["equals"] for c in _walk_conditions(cond) if c.get("field") == "type"}
    assert types == {NSG, RULE}
    # aliases referenced inside template expressions too
    exprs = [c["value"] for c in _walk_conditions(cond) if isinstance(c.get("value"), str)]
    for e in exprs:
        for alias in re.findall(r"(?:current|field)\('([^']+)'\)", e):
            assert alias in KNOWN_ALIASES or alias == "port", alias


def test_structure_effect_is_parameterised_audit_by_default():
    doc = load_policy()
    assert doc["policyRule"]["then"]["effect"] == "[parameters('effect')]"
    eff = doc["parameters"]["effect"]
    assert eff["defaultValue"] == "Audit"
    assert set(eff["allowedValues"]) == {"Audit", "Deny", "Disabled"}
    assert doc["mode"] == "All"  # securityRules child resources are not 'Indexed'


def test_every_expression_parses_and_uses_only_modelled_functions():
    doc = load_policy()
    modelled = {
        "if",
        "and",
        "or",
        "parameters",
        "current",
        "field",
        "empty",
        "equals",
        "tolower",
        "split",
        "first",
        "last",
        "int",
        "lessorequals",
        "greaterorequals",
        "not",
    }
    for c in _walk_conditions(doc["policyRule"]):
        for v in c.values():
            if isinstance(v, str) and v.startswith("["):
                tree = _Expr(v[1:-1]).parse()
                stack = [tree]
                while stack:
                    n = stack.pop()
                    if n[0] == "call":
                        assert n[1].lower() in modelled, n[1]
                        stack.extend(n[2])


def test_bicep_loads_this_file_and_passes_effect_and_ports():
    text = (REPO / "infra" / "modules" / "policy.bicep").read_text()
    assert "loadJsonContent('../policy/deny-internet-ssh.json')" in text
    for p in ("effect", "ports", "publicSources"):
        assert re.search(rf"\b{p}:\s*{{\s*value:", text), p
