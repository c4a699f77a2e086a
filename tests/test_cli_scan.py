"""``nsg-guard scan``: the JSON contract, the examples' expected findings, SARIF and exit codes."""

import json
from pathlib import Path

import pytest

from shared.cli import main
from tests.nsgfactory import nsg, rule

EXAMPLES = ["examples/estate.json", "examples/az-nsg-list.json", "examples/resource-graph.json"]
CONTRACT_FIELDS = {"findingId": str, "nsgId": str, "nsgName": str, "ruleName": str, "ruleId": str,
                   "port": int, "portKind": str, "exposure": str, "active": bool, "status": str,
                   "severity": str, "priority": int, "sources": list, "reason": str, "attachment": str}


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_examples_give_the_findings_a_security_engineer_expects(capsys):
    code, out, _ = run(capsys, "scan", "examples/estate.json", "--ssh-ports", "2222", "--format", "json")
    doc = json.loads(out)
    got = sorted((f["nsgName"], f["ruleName"], f["port"], f["exposure"], f["active"], f["severity"])
                 for f in doc["findings"])
    assert got == sorted([
        ("ci-gpu-01-nsg", "AllowSSH", 22, "internet", True, "high"),
        ("train-cluster-nsg", "AllowCustomSSH", 2222, "internet", True, "medium"),
        ("ci-gpu-split-nsg", "AllowSSHHalfA", 22, "internet", True, "high"),
        ("ci-gpu-split-nsg", "AllowSSHHalfB", 22, "broad", True, "medium"),
        ("ci-gpu-ipv6-nsg", "AllowSSHv6", 22, "internet", True, "high"),
        ("vm-jumpbox-nsg", "SecurityCenter-JITRule_1123581321_3A3FB5E4B6A94D7F8E0D2B1C0A9F8E7D", 22,
         "trusted", True, "low"),
        ("rdp-legacy-nsg", "AllowRDPFromAzure", 3389, "broad", True, "medium"),
        ("legacy-shadowed-nsg", "AllowSSHAnywhere", 22, "internet", False, "info"),
    ])
    assert doc["summary"] == {"nsgs": 10, "compliant": 4, "compliancePercent": 40.0, "findings": 8}
    assert code == 1


@pytest.mark.parametrize("example", EXAMPLES)
def test_json_contract_field_for_field(capsys, example):
    _, out, _ = run(capsys, "scan", example, "--format", "json", "--fail-on", "never")
    doc = json.loads(out)
    assert set(doc) == {"findings", "summary"}
    assert set(doc["summary"]) == {"nsgs", "compliant", "compliancePercent", "findings"}
    assert isinstance(doc["summary"]["compliancePercent"], float)
    assert doc["findings"]
    for f in doc["findings"]:
        assert list(f) == list(CONTRACT_FIELDS)
        for key, kind in CONTRACT_FIELDS.items():
            assert isinstance(f[key], kind), key
        assert f["severity"] in {"info", "low", "medium", "high", "critical"}
        assert f["exposure"] in {"internet", "broad", "trusted"}
        assert f["portKind"] in {"ssh", "ssh-custom", "management"}  # (+ "exemption-tag" for malformed tags)
        assert f["reason"].startswith(("TCP ", "latent: TCP "))
        assert f["status"] == ("Open" if f["active"] else "Latent")
        assert f["attachment"] in {"attached", "unattached"}


def test_finding_id_is_stable_across_runs_and_shapes(capsys):
    _, a, _ = run(capsys, "scan", "examples/estate.json", "--format", "json", "--fail-on", "never")
    _, b, _ = run(capsys, "scan", "examples/az-nsg-list.json", "--format", "json", "--fail-on", "never")
    ids_a = {(f["nsgName"], f["ruleName"], f["port"]): f["findingId"] for f in json.loads(a)["findings"]}
    ids_b = {(f["nsgName"], f["ruleName"], f["port"]): f["findingId"] for f in json.loads(b)["findings"]}
    assert ids_b and all(ids_a[k] == v for k, v in ids_b.items())


def test_table_output_for_people(capsys):
    _, out, _ = run(capsys, "scan", "examples/estate.json", "--color", "never")
    assert out.splitlines()[0].split() == ["SEVERITY", "PORT", "EXPOSURE", "NSG", "RULE", "PRIO", "SOURCES",
                                           "ATTACHED"]
    assert out.rstrip().splitlines()[-1] == "10 NSGs, 5 compliant (50.0%), 7 findings (3 high, 2 medium, 1 low, 1 info)"
    assert "Why:" not in out and "--explain" in out
    _, explained, _ = run(capsys, "scan", "examples/estate.json", "--color", "never", "--explain")
    assert "Why:" in explained and "shadowed by DenySSHInternet (100)" in explained
    assert explained.rstrip().splitlines()[-1].startswith("10 NSGs, 5 compliant")
    assert "\033[" not in out
    _, coloured, _ = run(capsys, "scan", "examples/estate.json", "--color", "always")
    assert "\033[1;31mhigh" in coloured


def test_sarif_output(capsys):
    _, out, _ = run(capsys, "scan", "examples/estate.json", "--format", "sarif")
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    run0 = doc["runs"][0]
    rule_ids = {r["id"] for r in run0["tool"]["driver"]["rules"]}
    results = run0["results"]
    assert len(results) == 7 and all(r["ruleId"] in rule_ids for r in results)
    high = next(r for r in results if "AllowSSH " in r["message"]["text"])
    assert high["level"] == "error"
    loc = high["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "examples/estate.json"
    line = Path("examples/estate.json").read_text().splitlines()[loc["region"]["startLine"] - 1]
    assert '"AllowSSH"' in line
    assert len(high["partialFingerprints"]["nsgGuardFindingId/v1"]) == 32


@pytest.mark.parametrize(("fail_on", "code"), [("never", 0), ("critical", 0), ("high", 1), ("low", 1),
                                               ("info", 1)])
def test_fail_on_thresholds(capsys, fail_on, code):
    assert run(capsys, "scan", "examples/estate.json", "--fail-on", fail_on)[0] == code


def test_latent_only_fails_only_at_info(tmp_path, capsys):
    path = tmp_path / "latent.json"
    path.write_text(json.dumps(nsg([rule("d", 100, "22", "*", access="Deny"), rule("a", 200, "22", "*")])))
    assert run(capsys, "scan", str(path))[0] == 0
    assert run(capsys, "scan", str(path), "--fail-on", "info")[0] == 1


def test_clean_input_exits_zero(tmp_path, capsys):
    path = tmp_path / "clean.json"
    path.write_text(json.dumps(nsg([rule("https", 100, "443", "Internet")])))
    code, out, _ = run(capsys, "scan", str(path))
    assert code == 0 and "No findings." in out and "1 NSGs, 1 compliant (100.0%)" in out


def test_bad_input_exit_2_names_file_nsg_and_rule(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(nsg([rule("a", 100)])))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([nsg([rule("ok", 100)], name="fine"),
                               nsg([rule("broken", 100, "22-")], name="gpu-nsg")]))
    code, out, err = run(capsys, "scan", str(good), str(bad), "--format", "json")
    assert code == 2 and out == ""
    assert f"file {bad}, NSG gpu-nsg, rule broken: invalid port '22-'" in err


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('"a string"', "expected an NSG"),
    ('[{"properties": {}}]', "NSG #1: missing required field 'name'"),
    ('{"value": {}}', "field 'value' must be a list"),
])
def test_malformed_files(tmp_path, capsys, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    code, _, err = run(capsys, "scan", str(path))
    assert code == 2 and message in err and str(path) in err


def test_missing_file(capsys):
    code, _, err = run(capsys, "scan", "does-not-exist.json")
    assert code == 2 and "does-not-exist.json" in err and "cannot read" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--ports", "3389,abc"], "--ports: 'abc' is not a port number"),
    (["--ssh-ports", "70000"], "--ssh-ports: '70000' is not a port number"),
    (["--ssh-ports", "3389"], "listed both as SSH ports and as management ports"),
    (["--ports", "22"], "port 22 is always watched"),
])
def test_bad_options(capsys, argv, message):
    code, _, err = run(capsys, "scan", "examples/estate.json", *argv)
    assert code == 2 and message in err


def test_ports_option_changes_what_is_watched(capsys):
    _, out, _ = run(capsys, "scan", "examples/estate.json", "--ports", "", "--format", "json")
    assert {f["port"] for f in json.loads(out)["findings"]} == {22}


def test_python_dash_m_entry_point():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "shared", "scan", "examples/estate.json", "--format", "json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and json.loads(proc.stdout)["summary"]["nsgs"] == 10


def test_extra_tags_option(tmp_path, capsys):
    path = tmp_path / "corp.json"
    path.write_text(json.dumps(nsg([rule("corp", 100, "22", "CorpEgress")])))
    code, out, _ = run(capsys, "scan", str(path))
    # Unknown token: evaluated (non-public) and reported as a low finding of its own, which fails --fail-on low.
    assert code == 1 and "unknown-token" in out and "CorpEgress" in out
    assert run(capsys, "scan", str(path), "--extra-tags", "CorpEgress")[0] == 0


SELF_EXEMPT = {"nsg-guard-exempt": "rules=*; expires=9999-12-31; reason=debug"}


def _exemption_rows(nsg_json, expires, fingerprint_of=None):
    """Resource Graph ``policyresources`` rows for one exemption of AllowSSH (fingerprint of ``fingerprint_of``)."""
    from shared.core.model import parse_nsg
    from shared.core.policyexemptions import rule_fingerprint

    n = parse_nsg(fingerprint_of or nsg_json)
    return {"data": [{
        "id": f"{n.id}/providers/Microsoft.Authorization/policyExemptions/vendor", "name": "vendor",
        "type": "microsoft.authorization/policyexemptions", "subscriptionId": n.subscription_id,
        "properties": {"policyAssignmentId": f"/subscriptions/{n.subscription_id}/providers/Microsoft.Authorization/"
                                             "policyAssignments/nsg-guard-internet-ssh",
                       "exemptionCategory": "Waiver", "expiresOn": expires,
                       "metadata": {"nsgGuard": {"ticket": "CHG-42", "rules": [
                           {"nsgId": n.id, "rule": "AllowSSH", "fingerprint": rule_fingerprint(n.rules[0])}]}}}}],
        "resultTruncated": "false"}


def test_scan_self_exemption_tag_stays_open(tmp_path, capsys):
    path = tmp_path / "self.json"
    path.write_text(json.dumps(nsg([rule("AllowSSH", 300, "22", "*")], tags=SELF_EXEMPT)))
    got, out, _ = run(capsys, "scan", str(path), "--format", "json")
    ssh = next(f for f in json.loads(out)["findings"] if f["ruleName"] == "AllowSSH")
    assert got == 1 and ssh["status"] == "Open" and ssh["severity"] == "high" and ssh["active"]


@pytest.mark.parametrize(("case", "code", "status"), [
    ("valid", 0, "Exempt"),
    ("expired", 1, "Open"),
    ("widened", 1, "Open"),  # approved for a /32, the rule now allows '*'
    ("too-long", 1, "Open"),  # exempts nothing, and is a finding of its own
])
def test_scan_applies_policy_exemptions_from_a_file(tmp_path, capsys, case, code, status):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    live = nsg([rule("AllowSSH", 300, "22", "*")])
    expires = {"expired": now - timedelta(hours=1), "too-long": now + timedelta(days=91)}.get(
        case, now + timedelta(days=30)).isoformat()
    approved = nsg([rule("AllowSSH", 300, "22", "52.1.2.3/32")]) if case == "widened" else None
    (tmp_path / "nsg.json").write_text(json.dumps(live))
    (tmp_path / "ex.json").write_text(json.dumps(_exemption_rows(live, expires, approved)))
    got, out, err = run(capsys, "scan", str(tmp_path / "nsg.json"), "--exemptions", str(tmp_path / "ex.json"),
                        "--format", "json")
    findings = json.loads(out)["findings"]
    ssh = next(f for f in findings if f["ruleName"] == "AllowSSH")
    assert (got, ssh["status"]) == (code, status), err
    if case == "too-long":
        (bad,) = [f for f in findings if f["portKind"] == "exemption"]
        assert bad["severity"] == "low" and "more than 90 days" in bad["reason"]


@pytest.mark.parametrize("content", ['{"value": [], "nextLink": "https://x"}', '[{"name": "no id"}]', "nope"])
def test_scan_rejects_unusable_exemption_files(tmp_path, capsys, content):
    (tmp_path / "nsg.json").write_text(json.dumps(nsg([rule("AllowSSH", 300, "22", "*")])))
    (tmp_path / "ex.json").write_text(content)
    got, _, err = run(capsys, "scan", str(tmp_path / "nsg.json"), "--exemptions", str(tmp_path / "ex.json"))
    assert got == 2 and "ex.json" in err and "Traceback" not in err


def test_closed_pipe_is_not_a_crash(tmp_path):
    import subprocess
    import sys

    text = Path("examples/estate.json").read_text()
    paths = []
    for n in range(20):  # ~300 KB of JSON: more than a pipe buffer holds (distinct ids: no duplicates)
        path = tmp_path / f"estate-{n}.json"
        path.write_text(text.replace("resourceGroups/", f"resourceGroups/copy{n}-"))
        paths.append(str(path))
    files = " ".join(paths)
    proc = subprocess.run(f"{sys.executable} -m shared scan {files} --format json | head -c 10",
                          shell=True, capture_output=True, text=True, check=False)
    assert proc.stdout == '{"findings' and "Traceback" not in proc.stderr
