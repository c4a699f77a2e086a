"""The Azure ML lens's set arithmetic against the naive reference of tests/test_exposure_properties.py:
what one NSG hop admits on the compute's SSH port, and what the path (subnet NSG, then AML's own NSG) admits,
are exactly the public addresses the reference lets through both (hypothesis, boundary samples). Each hop is
judged on its own source ports, so a path is reported open when one source port passes the first hop and
another the second: the conservative side for a security check."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.aml import hop_view, judge, parse_compute
from shared.core.effective import intersect_hops
from shared.core.model import parse_nsg
from tests.nsgfactory import reference
from tests.test_exposure_properties import (
    EVALUATOR,
    random_nsgs,
    ref_first_match,
    ref_is_public,
    sample_addresses,
    sample_source_ports,
)

PORT = 22


def allows(raw_rules: list[dict], addr) -> bool:
    """docs/semantics.md: a source is let through when *some* source port reaches an Allow first (a Deny
    covers only the source ports it names), checked at every source-port boundary of the rules."""
    for sport in sample_source_ports(raw_rules):
        decider = ref_first_match(raw_rules, addr, PORT, sport=sport)
        if decider is not None and not decider.startswith("deny:"):
            return True
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nsgs(), random_nsgs())
def test_path_admits_exactly_what_both_hops_let_through(subnet_doc, aml_doc):
    subnet_rules = subnet_doc["properties"]["securityRules"]
    aml_rules = aml_doc["properties"]["securityRules"]
    a = hop_view(EVALUATOR, parse_nsg(subnet_doc), "subnet", (PORT,)).allowed[PORT]
    b = hop_view(EVALUATOR, parse_nsg(aml_doc), "aml-managed", (PORT,)).allowed[PORT]
    through = intersect_hops(a, b, EVALUATOR.public)
    for addr in (x for x in sample_addresses(subnet_rules + aml_rules) if ref_is_public(x)):
        assert (addr in a.addresses) == allows(subnet_rules, addr), str(addr)
        assert (addr in through.addresses) == (allows(subnet_rules, addr) and allows(aml_rules, addr)), str(addr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_nsgs(), st.booleans())
def test_critical_exactly_when_the_subnet_nsg_admits_internet_class_sources(subnet_doc, ssh_on):
    """A public compute instance on 22 in that subnet: critical iff SSH is on and the hop is internet-class."""
    body = copy.deepcopy(reference("aml-compute-instance.json"))
    inner = body["properties"]["properties"]
    inner["sshSettings"] = {"sshPublicAccess": "Enabled" if ssh_on else "Disabled", "sshPort": PORT}
    doc = copy.deepcopy(subnet_doc)
    doc["properties"]["subnets"] = [{"id": inner["subnet"]["id"]}]
    nsg = parse_nsg(doc)
    verdict = judge(parse_compute(body), EVALUATOR, [nsg])
    hop = EVALUATOR.classify(hop_view(EVALUATOR, nsg, "subnet", (PORT,)).allowed[PORT])
    assert (verdict.severity == "critical") == (ssh_on and hop == "internet")
    if ssh_on and hop == "none":
        assert verdict.severity == "info" and verdict.findings[-1].status == "Latent"
