"""``nsg-guard`` on hostile and incomplete input: one line and exit 2, never a traceback, never "compliant".

Issue 13 (bad files, stdin, exit codes, zero NSGs) and issue 9 item 5 (incomplete input reads as compliant).
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys

import pytest

from shared.cli import build_parser, main
from tests.nsgfactory import nsg, nsg_id, rule

OPEN_SSH = nsg([rule("AllowSSH", 300, "22", "*")], name="open-nsg")


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return "Traceback" not in err and 1 <= len(lines) <= 2 and lines[0].startswith("nsg-guard: error:")


# --- bytes that are not UTF-8 JSON -----------------------------------------------------------------

@pytest.mark.parametrize(("name", "data", "message"), [
    ("binary_png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
    ("json_gz", gzip.compress(json.dumps(OPEN_SSH).encode()), "gzip-compressed"),
    ("latin_1", json.dumps({**OPEN_SSH, "tags": {"owner": "J\u00fcrgen"}}, ensure_ascii=False).encode("latin-1"),
     "not UTF-8 text"),
    ("utf16_without_bom", json.dumps(OPEN_SSH).encode("utf-16-le"), "binary data"),
    ("deeply_nested", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("empty_file", b"", "not valid JSON"),
    ("empty_object", b"{}", "no NSGs here"),
    ("nsgs_not_a_list", b'{"nsgs": 5}', "no NSGs here"),
])
def test_hostile_file_is_exit_2_with_one_line(tmp_path, capsys, name, data, message):
    path = tmp_path / f"{name}.json"
    path.write_bytes(data)
    code, out, err = run(capsys, "scan", str(path))
    assert code == 2 and out == ""
    assert one_line_error(err) and message in err and str(path) in err


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-16-be", "utf-32"])
def test_bom_encoded_file_is_decoded_not_rejected(tmp_path, capsys, encoding):
    """Windows PowerShell's `az network nsg list > f.json` writes UTF-16 with a BOM."""
    path = tmp_path / "powershell.json"
    text = json.dumps([OPEN_SSH])
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    code, out, _ = run(capsys, "scan", str(path), "--format", "json")
    assert code == 1 and json.loads(out)["findings"][0]["ruleName"] == "AllowSSH"


def test_scan_dash_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps([OPEN_SSH]).encode("utf-16"))))
    code, out, _ = run(capsys, "scan", "-", "--format", "json")
    assert code == 1 and json.loads(out)["summary"]["nsgs"] == 1


def test_scan_dash_through_a_pipe():
    proc = subprocess.run([sys.executable, "-m", "shared", "scan", "-", "--format", "sarif"],
                          input=json.dumps([OPEN_SSH]), capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    (result,) = json.loads(proc.stdout)["runs"][0]["results"]
    (location,) = result["locations"]
    assert "physicalLocation" not in location  # standard input has no URI
    assert location["logicalLocations"][0]["fullyQualifiedName"].endswith("/securityRules/AllowSSH")


def test_bad_stdin_names_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x1f\x8b\x08\x00")))
    code, _, err = run(capsys, "scan", "-")
    assert code == 2 and "file <stdin>: gzip-compressed" in err


# --- incomplete input (issue 9 item 5) -------------------------------------------------------------

def _projection() -> list[dict]:
    """`az network nsg list --query "[].{name:name,id:id}"`: names and ids, no rules."""
    return [{"name": "open-nsg", "id": nsg_id("open-nsg")}]


def _null_rules() -> dict:
    return {**OPEN_SSH, "properties": {**OPEN_SSH["properties"], "securityRules": None}}


def _missing_rules() -> dict:
    props = {k: v for k, v in OPEN_SSH["properties"].items() if k != "securityRules"}
    return {**OPEN_SSH, "properties": props}


@pytest.mark.parametrize(("case", "doc", "message"), [
    ("nsg_without_properties_az_query_projection", _projection(), "no 'properties' and no 'securityRules'"),
    ("security_rules_null", _null_rules(), "'properties.securityRules' is null"),
    ("security_rules_missing", _missing_rules(), "'properties.securityRules' is missing"),
    ("az_flattened_security_rules_null", {"name": "x", "id": nsg_id("x"), "securityRules": None},
     "'securityRules' is null"),
    ("same_nsg_id_twice", [OPEN_SSH, nsg([], name="open-nsg")], "the same NSG id appears twice"),
])
def test_incomplete_nsg_is_an_input_error_not_compliant(tmp_path, capsys, case, doc, message):
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(doc))
    code, out, err = run(capsys, "scan", str(path), "--fail-on", "never")
    assert code == 2 and out == "" and message in err and str(path) in err


def test_same_nsg_id_in_two_files_is_an_input_error(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(OPEN_SSH))
    b.write_text(json.dumps(nsg([], name="open-nsg")))  # another version: "50% compliant" before
    code, _, err = run(capsys, "scan", str(a), str(b))
    assert code == 2 and f"file {b}, NSG open-nsg: the same NSG id appears twice (also in {a}" in err


PAGES = [
    ("arm_page_with_next_link", {"value": [OPEN_SSH], "nextLink": "https://management.azure.com/x?$skiptoken=a"},
     "'nextLink' is set"),
    ("resource_graph_truncated", {"totalRecords": 1, "count": 1, "data": [OPEN_SSH], "resultTruncated": "true"},
     "'resultTruncated' is true"),
    ("resource_graph_skip_token", {"count": 1, "data": [OPEN_SSH], "$skipToken": "ew0KI"}, "'$skipToken' is set"),
    ("az_graph_query_skip_token", {"count": 1, "data": [OPEN_SSH], "skip_token": "ew0KI", "total_records": 7},
     "'skip_token' is set"),
    ("total_records_above_rows", {"count": 1, "data": [OPEN_SSH], "totalRecords": 3}, "'totalRecords' is 3"),
]


@pytest.mark.parametrize(("case", "doc", "message"), PAGES)
def test_paging_marker_is_exit_2_unless_allow_partial(tmp_path, capsys, case, doc, message):
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(doc))
    code, out, err = run(capsys, "scan", str(path), "--fail-on", "never")
    assert code == 2 and out == "" and message in err and "--allow-partial" in err
    code, out, err = run(capsys, "scan", str(path), "--fail-on", "never", "--allow-partial", "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["nsgs"] == 1
    assert "WARNING" in err and message in err and "NOT checked" in err


def test_resource_graph_page_without_markers_is_whole(tmp_path, capsys):
    path = tmp_path / "rg.json"
    path.write_text(json.dumps({"totalRecords": 1, "count": 1, "data": [OPEN_SSH], "resultTruncated": "false",
                                "$skipToken": None}))
    code, _, err = run(capsys, "scan", str(path))
    assert code == 1 and err == ""


# --- zero NSGs, exit codes -------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["[]", '{"value": []}', '{"data": [], "count": 0, "totalRecords": 0}'])
def test_zero_nsgs_warns_on_stderr(tmp_path, capsys, content):
    path = tmp_path / "empty.json"
    path.write_text(content)
    code, out, err = run(capsys, "scan", str(path))
    assert code == 0 and "0 NSGs" in out
    assert "WARNING: the input holds no NSGs" in err


def test_internal_error_is_exit_3_never_1(tmp_path, capsys, monkeypatch):
    import shared.app.output

    def broken(*_a, **_k):
        raise KeyError("boom")

    monkeypatch.setattr(shared.app.output, "render_table", broken)
    path = tmp_path / "n.json"
    path.write_text(json.dumps(OPEN_SSH))
    code, _, err = run(capsys, "scan", str(path))
    assert code == 3 and "internal error (KeyError" in err and "Traceback" not in err


def test_every_subcommand_documents_its_exit_codes():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert len(sub.choices) >= 8
    for name, p in sub.choices.items():
        text = p.format_help()
        for code in ("0  success", "1  ", "2  bad input", "3  internal error"):
            assert code in text, (name, code)
    assert "exit codes" in parser.format_help()


def test_usage_error_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == 2


@pytest.mark.parametrize(("case", "doc", "message"), [
    ("projection", _projection(), "no 'properties' and no 'securityRules'"),
    ("paged", {"value": [OPEN_SSH], "nextLink": "https://x"}, "'nextLink' is set"),
    ("duplicate", [OPEN_SSH, OPEN_SSH], "the same NSG id appears twice"),
])
def test_remediate_refuses_incomplete_input_too(tmp_path, capsys, case, doc, message):
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(doc))
    code, out, err = run(capsys, "remediate", str(path), "--dry-run")
    assert code == 2 and out == "" and message in err
