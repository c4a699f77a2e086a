"""``localazure --seed`` and ``sweep --local`` accept every input shape ``scan`` accepts, checked the same way
(issue 13: ``{"value": [...]}`` seeded 0 NSGs silently; ``{}`` and ``{"nsgs": 5}`` gave tracebacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localazure.__main__ import main as localazure_main
from localazure.seeds import read_seed, seed_file
from localazure.server import LocalAzure
from shared.cli import main
from shared.core.errors import InputError
from shared.core.model import parse_nsg
from tests.nsgfactory import nsg, nsg_id, rule

ONE = nsg([rule("AllowSSH", 300, "22", "*")], name="one-nsg")


def _az_shape() -> dict:
    """`az network nsg show` flattens properties to the top level."""
    return {"name": "az-nsg", "id": nsg_id("az-nsg"), "location": "westeurope", "resourceGroup": "rg1",
            "securityRules": [{"name": "AllowSSH", **ONE["properties"]["securityRules"][0]["properties"]}],
            "subnets": [{"id": "/subscriptions/x/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v/"
                               "subnets/s1"}]}


SHAPES = [
    ("arm_page_value", lambda: json.loads(Path("examples/estate.json").read_text()), 10),
    ("az_nsg_list", lambda: json.loads(Path("examples/az-nsg-list.json").read_text()), None),
    ("resource_graph", lambda: json.loads(Path("examples/resource-graph.json").read_text()), None),
    ("single_nsg", lambda: ONE, 1),
    ("list", lambda: [ONE], 1),
    ("az_flattened", lambda: [_az_shape()], 1),
    ("bundle", lambda: {"nsgs": [ONE], "nics": []}, 1),
]


def scan_count(capsys, path: Path) -> int:
    assert main(["scan", str(path), "--format", "json", "--fail-on", "never"]) == 0
    return json.loads(capsys.readouterr().out)["summary"]["nsgs"]


@pytest.mark.parametrize(("shape", "build", "expected"), SHAPES)
def test_seed_accepts_every_scan_shape(tmp_path, capsys, shape, build, expected):
    path = tmp_path / f"{shape}.json"
    path.write_text(json.dumps(build()))
    count = scan_count(capsys, path) if shape != "bundle" else 1
    assert expected is None or count == expected
    with LocalAzure() as azure:
        assert seed_file(azure, path).nsgs == count
        seeded = azure.nsgs()
        assert len(seeded) == count
        for body in seeded:  # what the stand-in serves parses like the file did
            parse_nsg(body)


def test_az_shape_is_rebuilt_as_arm_with_its_rules_and_attachments(tmp_path):
    path = tmp_path / "az.json"
    path.write_text(json.dumps([_az_shape()]))
    with LocalAzure() as azure:
        seed_file(azure, path)
        (body,) = azure.nsgs()
    parsed = parse_nsg(body)
    assert [r.name for r in parsed.rules] == ["AllowSSH"] and parsed.subnet_ids


@pytest.mark.parametrize(("case", "content", "message"), [
    ("empty_object", "{}", "no NSGs here"),
    ("nsgs_not_a_list", '{"nsgs": 5}', "field 'nsgs' must be a list of objects"),
    ("unknown_bundle_key", '{"nsgs": [], "nic": []}', "unknown seed field(s) nic"),
    ("projection", json.dumps([{"name": "a", "id": nsg_id("a")}]), "no 'properties' and no 'securityRules'"),
    ("paged", json.dumps({"value": [ONE], "nextLink": "https://x"}), "'nextLink' is set"),
    ("duplicate", json.dumps([ONE, ONE]), "the same NSG id appears twice"),
    ("bad_rule", json.dumps(nsg([rule("x", 100, "22-")])), "invalid port '22-'"),
    ("utf16_no_bom", None, "binary data"),
])
def test_bad_seed_is_exit_2_on_both_commands(tmp_path, capsys, case, content, message):
    path = tmp_path / f"{case}.json"
    if content is None:
        path.write_bytes(json.dumps(ONE).encode("utf-16-le"))
    else:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        read_seed(path)
    assert message in str(info.value)
    assert main(["sweep", "--local", str(path), "--local-rows", str(tmp_path / "rows")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
    assert localazure_main(["--port", "0", "--seed", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_seed_without_nsgs_warns(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text('{"value": []}')
    assert main(["sweep", "--local", str(path), "--local-rows", str(tmp_path / "rows"), "--json"]) == 0
    err = capsys.readouterr().err
    assert "holds no NSGs" in err and "WARNING: the sweep found no NSGs" in err


@pytest.mark.parametrize(("bundle", "message"), [
    ({"nsgs": [], "nics": [{"name": "no-id"}]}, "nics #1: network interface row without an 'id'"),
    ({"nsgs": [], "nics": [{"id": "/subscriptions/s/x", "properties": []}]}, "nics #1"),
    ({"nsgs": [], "publicIps": [{"id": 5}]}, "publicIps #1: needs an ARM 'id'"),
])
def test_bad_context_rows_in_a_bundle_are_input_errors(tmp_path, bundle, message):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_seed(path)
