"""``nsg-guard scan --format sarif``: located inside the right NSG in one pass, suppressions for exempt
findings, security-severity on rules, unique rule names, help text that speaks of the right service."""

from __future__ import annotations

import json
import time

from shared.cli import main
from tests.nsgfactory import nsg, rule


def sarif(capsys, *paths, **kw):
    code = main(["scan", *map(str, paths), "--format", "sarif", "--fail-on", "never"])
    assert code == 0
    return json.loads(capsys.readouterr().out)["runs"][0]


def test_results_point_inside_their_own_nsg_when_rule_names_repeat(tmp_path, capsys):
    nsgs = [nsg([rule("AllowSSH", 300, "22", "10.0.0.0/8", nsg=f"n{i}")], name=f"n{i}") for i in range(3)]
    nsgs.append(nsg([rule("AllowSSH", 300, "22", "*", nsg="open")], name="open"))
    path = tmp_path / "estate.json"
    path.write_text(json.dumps(nsgs, indent=2))
    lines = path.read_text().splitlines()
    (result,) = sarif(capsys, path)["results"]
    line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert '"AllowSSH"' in lines[line - 1]
    open_start = next(n for n, text in enumerate(lines, 1) if '"name": "open"' in text)
    first_rule = next(n for n, text in enumerate(lines, 1) if '"name": "AllowSSH"' in text)
    assert line > first_rule  # the first AllowSSH in the file belongs to n0, not to "open"
    nsg_open_region = [n for n, text in enumerate(lines, 1) if "networkSecurityGroups/open" in text]
    assert min(nsg_open_region) - 5 <= line and open_start - 200 < line


def test_location_for_a_rule_named_like_its_nsg_and_flattened_az_shape(tmp_path, capsys):
    body = nsg([rule("gpu", 300, "22", "*", nsg="gpu")], name="gpu")
    az = {"name": "gpu", "id": body["id"], "securityRules": [{"name": "gpu", **body["properties"]["securityRules"][0]
                                                               ["properties"]}]}
    for doc in (body, {"value": [body]}, [az]):
        path = tmp_path / "one.json"
        path.write_text(json.dumps(doc, indent=2))
        lines = path.read_text().splitlines()
        (result,) = sarif(capsys, path)["results"]
        line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
        own_name = next(n for n, text in enumerate(lines, 1) if '"name": "gpu"' in text)
        assert '"name": "gpu"' in lines[line - 1] and (line != own_name or doc is az), doc


def test_sarif_is_linear_on_a_large_estate(tmp_path, capsys):
    """1,000 NSGs took 77 s when each finding re-split the whole input: now one pass per file."""
    nsgs = [nsg([rule("AllowSSH", 300, "22", "*", nsg=f"n{i}"), rule("AllowRDP", 310, "3389", "*", nsg=f"n{i}")],
                name=f"n{i}", defaults=False) for i in range(1000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(nsgs, indent=2))
    started = time.perf_counter()
    run = sarif(capsys, path)
    elapsed = time.perf_counter() - started
    assert len(run["results"]) == 2000 and elapsed < 15
    lines = path.read_text().splitlines()
    for result in run["results"][::97]:
        nsg_name = result["properties"]["nsgId"].rsplit("/", 1)[-1]
        line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
        owner = next(text for text in reversed(lines[:line]) if text.startswith('    "name": '))
        assert owner == f'    "name": "{nsg_name}",' and '"name": "Allow' in lines[line - 1]


def test_exempt_findings_carry_suppressions(tmp_path, capsys):
    from datetime import UTC, datetime, timedelta

    from tests.test_cli_scan import _exemption_rows

    live = nsg([rule("AllowSSH", 300, "22", "*")])
    path, exemptions = tmp_path / "exempt.json", tmp_path / "exemptions.json"
    path.write_text(json.dumps(live))
    exemptions.write_text(json.dumps(_exemption_rows(live, (datetime.now(UTC) + timedelta(days=30)).isoformat())))
    (result,) = [r for r in sarif(capsys, path, "--exemptions", exemptions)["results"]
                 if r["properties"]["port"] == 22]
    assert result["properties"]["status"] == "Exempt"
    (suppression,) = result["suppressions"]
    assert suppression["kind"] == "external" and suppression["status"] == "accepted"
    assert "CHG-42" in suppression["justification"]


def test_rules_have_security_severity_unique_names_and_service_help(capsys):
    run = sarif(capsys, "examples/estate.json")
    rules = run["tool"]["driver"]["rules"]
    names = [r["name"] for r in rules]
    assert len(names) == len(set(names))
    assert all(0 < float(r["properties"]["security-severity"]) <= 10 for r in rules)
    by_id = {r["id"]: r for r in rules}
    assert float(by_id["NSGG/ssh/internet"]["properties"]["security-severity"]) >= 7.0
    rdp = by_id["NSGG/management/3389/broad"]
    assert "RDP" in rdp["help"]["text"] and "SSH" not in rdp["help"]["text"]
    assert "SSH" in by_id["NSGG/ssh/internet"]["help"]["text"]
    latent = by_id["NSGG/ssh/internet/latent"]
    assert latent["name"] != by_id["NSGG/ssh/internet"]["name"] and "Latent" in latent["name"]
    assert all(r["ruleId"] in by_id for r in run["results"])


def test_findings_about_the_nsg_itself_get_their_own_rule(tmp_path, capsys):
    path = tmp_path / "badtag.json"
    path.write_text(json.dumps(nsg([rule("AllowHttps", 300, "443", "*")], tags={"nsg-guard-exempt": "rules=x"})))
    run = sarif(capsys, path)
    (result,) = run["results"]
    (r,) = run["tool"]["driver"]["rules"]
    assert result["ruleId"] == r["id"] == "NSGG/exemption-tag" and r["name"] == "ExemptionTag"
    assert "TCP" not in r["help"]["text"] and "reachable" not in r["shortDescription"]["text"]


def test_rule_names_read_like_the_rule(capsys):
    names = {r["id"]: r["name"] for r in sarif(capsys, "examples/estate.json")["tool"]["driver"]["rules"]}
    assert names["NSGG/ssh/internet"] == "SshExposedInternet"
    assert names["NSGG/ssh/internet/latent"] == "SshExposedInternetLatent"
    assert names["NSGG/management/3389/broad"] == "ManagementPort3389ExposedBroad"
