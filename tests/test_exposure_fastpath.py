"""The evaluator's fast paths give what its general first-match walk gives, value for value (hypothesis).

``Evaluator(fast=False)`` sends every NSG through the general walk (source-port pieces, narrower
destinations); the default evaluator takes ``_first_match_simple`` when every relevant rule applies to all
destinations and all source ports. The NSGs drawn here are mostly of that kind (so the fast path runs), with
AzureCloud, whole-space and split-range sources, Deny/Allow mixes and some rules that are not simple.
Both the engine's raw exposures and its findings are compared, on cold and on warm caches.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.exposure import Evaluator
from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, watched_ports
from tests.nsgfactory import nsg, rule
from tests.test_exposure_properties import random_v4, random_v6, set_source_ports

WATCHED = (22, 23, 2222, 3389, 5985, 5986)
POOL = ["*", "Any", "Internet", "VirtualNetwork", "AzureLoadBalancer", "AzureCloud", "AzureCloud.WestEurope",
        "AzureCloud.northeurope", "Storage.WestEurope", "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "52.0.0.0/8",
        "52.174.0.0/16", "8.8.8.8", "10.0.0.0/8", "100.64.0.0/10", "203.0.113.0/24", "::/0", "2000::/3",
        "2a01:111::/32", "fd00::/8", "NotARealTag"]
PORTS = ["*", "22", "20-25", "3389", "2222", "1-21", "23-65535", "5985-5986", "5986", "1-1024"]
SOURCE_PORTS = ["*"] * 8 + ["1", "0-1023", ["1-100", "200-300"]]
DESTINATIONS = ["*"] * 8 + ["VirtualNetwork", "Any", "10.0.0.4", "10.0.0.0/24", ["10.0.0.4", "10.0.1.4"]]


@st.composite
def mostly_simple_nsgs(draw):
    n = draw(st.integers(1, 10))
    priorities = draw(st.lists(st.integers(100, 4096), min_size=n, max_size=n, unique=True))
    token = st.one_of(st.sampled_from(POOL), random_v4, random_v6)
    rules = []
    for i, prio in enumerate(priorities):
        sources = draw(st.one_of(token, st.lists(token, min_size=1, max_size=4)))
        ports = draw(st.one_of(st.sampled_from(PORTS), st.lists(st.sampled_from(PORTS[1:]), min_size=1, max_size=3)))
        dest = draw(st.sampled_from(DESTINATIONS))
        body = rule(f"r{i}", prio, ports, sources, access=draw(st.sampled_from(["Allow", "Allow", "Deny"])),
                    protocol=draw(st.sampled_from(["Tcp", "*", "Tcp", "Udp"])),
                    direction=draw(st.sampled_from(["Inbound", "Inbound", "Outbound"])), dest=dest)
        set_source_ports(body, draw(st.sampled_from(SOURCE_PORTS)))
        rules.append(body)
    return nsg(rules, defaults=draw(st.booleans()))


def _general_engine() -> Engine:
    engine = Engine(Policy(watched=watched_ports(ssh_ports=(2222,), management_ports=(3389, 5985, 5986, 23))))
    engine.evaluator = Evaluator(engine.policy.public, fast=False)
    return engine


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mostly_simple_nsgs(), min_size=1, max_size=3))
def test_fast_first_match_equals_general_walk(docs):
    fast, general = Evaluator(), Evaluator(fast=False)
    for _ in range(2):  # cold caches, then warm
        for doc in docs:
            parsed = parse_nsg(doc)
            assert fast.evaluate(parsed, WATCHED) == general.evaluate(parsed, WATCHED)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mostly_simple_nsgs(), min_size=1, max_size=3))
def test_fast_engine_findings_equal_general_walk(docs):
    fast = Engine(Policy(watched=watched_ports(ssh_ports=(2222,), management_ports=(3389, 5985, 5986, 23))))
    general = _general_engine()
    for _ in range(2):
        for doc in docs:
            parsed = parse_nsg(doc)
            a, b = fast.evaluate(parsed), general.evaluate(parsed)
            assert a.findings == b.findings
            assert [f.reason for f in a.findings] == [f.reason for f in b.findings]


def test_simple_nsg_takes_the_fast_path(monkeypatch):
    """Guards the test above: an NSG of '*'-destination, all-source-port rules goes through the fast walk."""
    calls: list[int] = []
    original = Evaluator._first_match_simple

    def counted(self, items, port):
        calls.append(port)
        return original(self, items, port)

    monkeypatch.setattr(Evaluator, "_first_match_simple", counted)
    doc = nsg([rule("deny-region", 100, "22", "AzureCloud.WestEurope", access="Deny"),
               rule("open", 200, "*", ["AzureCloud", "52.174.0.0/16"])])
    out = Evaluator().evaluate(parse_nsg(doc), WATCHED)
    assert calls and all(rx.rule.name == "open" for rxs in out.values() for rx in rxs)
    assert list(out[22][0].exposed.tags) == ["azurecloud-except:westeurope"]  # the region was denied first
    assert list(out[3389][0].exposed.tags) == ["azurecloud"]  # not on 3389
