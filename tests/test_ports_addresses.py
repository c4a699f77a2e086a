"""Strict parsing of port strings and source tokens: table-driven."""

import pytest

from shared.core.addresses import (
    DEFAULT_PUBLIC,
    KIND_ALL,
    KIND_BROAD_TAG,
    KIND_CIDR,
    KIND_INTERNET,
    KIND_TAG,
    KIND_UNKNOWN,
    AddressSet,
    parse_source_token,
)
from shared.core.errors import InputError
from shared.core.ports import PortSet


@pytest.mark.parametrize(("token", "expected"), [
    ("*", [(0, 65535)]), ("22", [(22, 22)]), ("0", [(0, 0)]), ("65535", [(65535, 65535)]),
    ("1000-2000", [(1000, 2000)]), (" 22 ", [(22, 22)]), ("22-22", [(22, 22)]), ("Any", [(0, 65535)]),
])
def test_valid_ports(token, expected):
    assert PortSet.parse(token).intervals == tuple(expected)


@pytest.mark.parametrize("token", ["22-", "-22", "70000", "65536", "abc", "", "2-1", "22,23", "2 2", "٢٢",
                                   "1e3", "+22", "22-70000"])
def test_invalid_ports_are_input_errors(token):
    with pytest.raises(InputError, match="invalid port"):
        PortSet.parse(token)


@pytest.mark.parametrize(("token", "kind"), [
    ("*", KIND_ALL), ("Any", KIND_ALL), ("any", KIND_ALL), ("Internet", KIND_INTERNET),
    ("INTERNET", KIND_INTERNET), ("10.0.0.0/8", KIND_CIDR), ("8.8.8.8", KIND_CIDR),
    ("::/0", KIND_CIDR), ("2001:db8::1", KIND_CIDR), ("VirtualNetwork", KIND_TAG),
    ("AzureLoadBalancer", KIND_TAG), ("Storage.WestEurope", KIND_TAG), ("AzureMachineLearning", KIND_TAG),
    ("AzureCloud", KIND_BROAD_TAG), ("AzureCloud.westeurope", KIND_BROAD_TAG),
    ("azurecloud.EastUS2", KIND_BROAD_TAG), ("AzureFrontDoor.Backend", KIND_TAG),
])
def test_source_token_kinds(token, kind):
    assert parse_source_token(token).kind == kind


@pytest.mark.parametrize("token", ["10.0.0.0/33", "300.1.1.1", "", "  ", "10.0.0.0/8,10.1.0.0/16",
                                   "Internet.WestEurope", "internet.eastus2"])
def test_malformed_source_tokens_are_input_errors(token):
    with pytest.raises(InputError):
        parse_source_token(token)


@pytest.mark.parametrize("token", ["Internett", "MyCorpVPN", "Storage.", "AzureBastionNext",
                                   "VirtualNetwork.westeurope", "ActionGroup.westeurope"])
def test_unknown_tag_tokens_are_kept_as_unknown_not_errors(token):
    """Azure publishes new tags: an unknown name is evaluated (never public) and reported, not fatal."""
    assert parse_source_token(token).kind == KIND_UNKNOWN


def test_azurecloud_with_a_region_we_do_not_list_is_still_broad():
    assert parse_source_token("AzureCloud.newregion9").kind == KIND_BROAD_TAG


def test_extra_service_tags_are_accepted_when_configured():
    assert parse_source_token("CorpEgress", frozenset({"corpegress"})).kind == KIND_TAG
    assert parse_source_token("CorpEgress").kind == KIND_UNKNOWN


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("52.174.10.20", True), ("10.1.2.3", False), ("172.31.255.255", False),
    ("172.32.0.0", True), ("100.64.0.1", False), ("100.128.0.0", True), ("127.0.0.1", False),
    ("169.254.169.254", False), ("192.0.0.8", False), ("192.0.2.1", False), ("192.168.1.1", False),
    ("198.18.0.1", False), ("198.20.0.1", True), ("198.51.100.7", False), ("203.0.113.45", False),
    ("224.0.0.1", False), ("255.255.255.255", False), ("0.1.2.3", False), ("1.0.0.0", True),
    ("2a01:111::1", True), ("2001:db8::1", False), ("fd00::1", False), ("::1", False),
    ("fe80::1", False), ("3fff:ffff::1", True), ("4000::1", False),
])
def test_public_space_is_the_explicit_list(address, public):
    assert (address in DEFAULT_PUBLIC) is public


def test_address_set_repr_round_trips():
    s = AddressSet.of("10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/24", "192.168.1.0/24", "::/0")
    assert repr(s) == "AddressSet.of(*['10.0.0.0/8', '192.168.0.0/23', '::/0'])"
    assert AddressSet.of(*s.to_cidrs()) == s
