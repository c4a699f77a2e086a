"""Set algebra of public sources for every token kind (hypothesis): symmetric, sound, exact.

Issue 9 item 6: ``overlaps(AzureCloud, Internet)`` was False while the reverse was True, so a narrowing
revert could let AzureCloud traffic fall through while the row said ``verified``. The laws below hold for
CIDRs (v4/v6), ``*``/``Any``, ``Internet``, ordinary tags, broad tags (AzureCloud and regions) and
unknown tokens. Broad tags are checked against a brute-force model that spells every region out.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.exposure import Evaluator, PublicSources, overlaps
from shared.core.model import parse_rule
from shared.core.tagsets import TagSet

EVALUATOR = Evaluator()
REGIONS = ["westeurope", "northeurope", "eastus", "centralfrance"]
TOKENS = ["*", "Any", "Internet", "VirtualNetwork", "Storage", "Sql.WestEurope", "AzureCloud",
          *(f"AzureCloud.{r}" for r in REGIONS), "AzureBastionNext", "0.0.0.0/0", "::/0", "10.0.0.0/8",
          "52.0.0.0/8", "52.174.0.0/16", "8.8.8.8", "2a01:111::/32", "0.0.0.0/1", "128.0.0.0/1"]
cidr_v4 = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                    st.integers(0, 2**32 - 1), st.integers(0, 32))
token_lists = st.lists(st.one_of(st.sampled_from(TOKENS), cidr_v4), min_size=1, max_size=3)


def sources(tokens: list[str]) -> PublicSources:
    body = {"name": "r", "properties": {"protocol": "Tcp", "access": "Allow", "direction": "Inbound",
                                        "priority": 100, "destinationPortRange": "22",
                                        "sourceAddressPrefixes": tokens}}
    return EVALUATOR.public_sources(parse_rule(body, nsg_id="/n"))


@settings(max_examples=300, deadline=None)
@given(token_lists, token_lists)
def test_laws_for_every_token_kind(ta, tb):
    a, b = sources(ta), sources(tb)
    assert overlaps(a, b) == overlaps(b, a)
    assert a & b == b & a
    assert (a & b) <= a and (a & b) <= b
    assert not ((a - b) & b)
    assert (a - b) | (a & b) == a
    assert (a - b) <= a
    if a & b:
        assert overlaps(a, b)  # sound: a shared source is always seen


@settings(max_examples=200, deadline=None)
@given(token_lists)
def test_public_part_of_a_rule_lies_within_every_public_source(tokens):
    """The evaluator exposes a first relevant rule's public part as it is (issue 15 fast path), which is exact
    only because that part never holds more than every public address and every broad tag."""
    a = sources(tokens)
    assert a & EVALUATOR._everything == a
    assert a <= EVALUATOR._everything


def test_overlaps_azurecloud_and_internet_is_symmetric():
    cloud, internet = sources(["AzureCloud"]), sources(["Internet"])
    assert overlaps(cloud, internet) and overlaps(internet, cloud)
    regional = sources(["AzureCloud.westeurope"])
    assert overlaps(cloud, regional) and overlaps(regional, cloud)
    assert not overlaps(regional, sources(["AzureCloud.eastus"]))


# --- broad tags against a model with every region spelled out ---------------------------------------
ATOMS = frozenset(REGIONS) | {"(other regions)"}


def atoms(names: list[str]) -> frozenset[str]:
    out: set[str] = set()
    for n in names:
        _base, _, region = n.lower().partition(".")
        out |= ATOMS if not region else {region}
    return frozenset(out)


tag_lists = st.lists(st.sampled_from(["AzureCloud", *(f"AzureCloud.{r}" for r in REGIONS)]), max_size=3)


def model_of(t: TagSet) -> frozenset[str]:
    (_, part), = t.parts or (("azurecloud", None),)
    if part is None:
        return frozenset()
    return ATOMS - part.regions if part.cofinite else frozenset(part.regions)


@settings(max_examples=300, deadline=None)
@given(tag_lists, tag_lists)
def test_tagset_matches_region_by_region_model(xa, xb):
    a, b = TagSet.of(xa), TagSet.of(xb)
    ma, mb = atoms(xa), atoms(xb)
    assert model_of(a | b) == ma | mb
    assert model_of(a & b) == ma & mb
    assert model_of(a - b) == ma - mb
    assert (a <= b) == (ma <= mb)
    assert bool(a) == bool(ma)
