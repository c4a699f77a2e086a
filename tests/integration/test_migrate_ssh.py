"""``nsg-guard migrate-ssh`` against the local stand-ins (real azure-mgmt-network client): step order, proof,
refusal of Any sources, resumability, restore. The TCP proof is a listening socket on 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from localazure.server import LocalAzure
from localazure.testing import nsg_body, rule_body
from shared.app.migrate_ssh import ALLOW_PREFIX, DENY_22
from shared.cli import main
from shared.core.model import parse_nsg
from shared.core.policy import Engine

SUB = "3a3a3a3a-0000-4000-8000-000000000001"


@pytest.fixture
def nsg_id(local_azure: LocalAzure) -> str:
    return local_azure.seed_nsg(nsg_body(SUB, "rg-ml-net", "snet-notebooks-nsg", [
        ("AllowSSH", rule_body(310, "22", "*")),
        ("AllowSSHFromBastion", rule_body(300, "22", "10.0.1.0/26")),
    ]))


@pytest.fixture
def listener() -> Iterator[int]:
    """Stands in for sshd on the new port: a socket listening on 127.0.0.1 (never another interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def exposure(azure: LocalAzure, nsg_id: str, port: int) -> str:
    engine = Engine()
    nsg = parse_nsg(azure.get_nsg(nsg_id))
    active = [rx.exposure for rx in engine.evaluator.evaluate(nsg, (port,))[port] if rx.active]
    return "internet" if "internet" in active else (active[0] if active else "none")


def rule_puts(azure: LocalAzure) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in azure.requests if r.method == "PUT" and r.resource == "rule"]


def migrate(*extra: str, nsg: str, sources: str = "203.0.113.0/24,52.174.10.16/28") -> int:
    return main(["migrate-ssh", nsg, "--to-port", "50022", "--from", sources, *extra])


@pytest.mark.parametrize("sources", [
    "*", "Any", "Internet", "internet", "0.0.0.0/0", "::/0",
    "0.0.0.0/1,128.0.0.0/1",  # split halves: internet-class together
    "20.0.0.0/8",  # broad public range
    "AzureCloud", "VirtualNetwork,*",
])
def test_refuses_any_and_internet_class_sources_before_writing(local_azure: LocalAzure, env: Any, nsg_id: str,
                                                               sources: str, capsys: pytest.CaptureFixture[str]):
    assert migrate("--confirm-connected", nsg=nsg_id, sources=sources) == 2
    assert "--from" in capsys.readouterr().err
    assert local_azure.count(method="PUT") == 0 and local_azure.count(method="GET") == 0


def test_without_proof_only_step_1_runs_and_22_stays_open(local_azure: LocalAzure, env: Any, nsg_id: str,
                                                          capsys: pytest.CaptureFixture[str]):
    assert migrate(nsg=nsg_id) == 1
    out = capsys.readouterr().out
    assert "step 1 APPLIED" in out and "step 2 WAITING" in out and "Port 50022" in out and "\nstep 3" not in out
    assert rule_puts(local_azure) == [f"{ALLOW_PREFIX}50022"]
    assert exposure(local_azure, nsg_id, 22) == "internet"  # never closes 22 first
    assert exposure(local_azure, nsg_id, 50022) == "trusted"  # the VPN /28: never internet or broad


def test_step_order_then_resume_with_tcp_proof(local_azure: LocalAzure, env: Any, nsg_id: str, listener: int,
                                               tmp_path: Any, capsys: pytest.CaptureFixture[str]):
    rows = tmp_path / "rows.jsonl"
    assert migrate("--rows-out", str(rows), nsg=nsg_id) == 1
    assert migrate("--check", f"127.0.0.1:{listener}", "--rows-out", str(rows), nsg=nsg_id) == 0
    out = capsys.readouterr().out
    assert "step 1 ALREADY-DONE" in out and "step 2 VERIFIED" in out and "step 3 APPLIED" in out
    assert rule_puts(local_azure) == [f"{ALLOW_PREFIX}50022", DENY_22]  # the allow before the deny, once each
    assert exposure(local_azure, nsg_id, 22) == "none"
    body = local_azure.get_nsg(nsg_id)
    rules = {r["name"]: r["properties"] for r in body["properties"]["securityRules"]}
    assert rules[DENY_22]["priority"] < 300 and rules[DENY_22]["access"] == "Deny"
    assert rules[f"{ALLOW_PREFIX}50022"]["sourceAddressPrefixes"] == ["203.0.113.0/24", "52.174.10.16/28"]
    recorded = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [(r["Details"]["step"], r["Result"]) for r in recorded] == [
        (1, "applied"), (2, "waiting"), (1, "already-done"), (2, "verified"), (3, "applied")]
    assert all(r["RecordType"] == "remediation" and r["Mode"] == "migrate-ssh" for r in recorded)
    # Ingested too, with the schema's columns only.
    assert [r["Result"] for r in local_azure.ingested() if r.get("Mode") == "migrate-ssh"][-1] == "applied"
    # Running it again changes nothing.
    assert migrate("--confirm-connected", nsg=nsg_id) == 0
    assert rule_puts(local_azure) == [f"{ALLOW_PREFIX}50022", DENY_22]


def test_failed_tcp_check_leaves_22_alone(local_azure: LocalAzure, env: Any, nsg_id: str,
                                          capsys: pytest.CaptureFixture[str]):
    assert migrate("--check", f"127.0.0.1:{closed_port()}", nsg=nsg_id) == 1
    assert "step 2 FAILED" in capsys.readouterr().out
    assert DENY_22 not in rule_puts(local_azure) and exposure(local_azure, nsg_id, 22) == "internet"


def test_dry_run_writes_nothing_and_plans_the_three_steps_in_order(local_azure: LocalAzure, env: Any, nsg_id: str,
                                                                   capsys: pytest.CaptureFixture[str]):
    assert migrate("--dry-run", "--json", nsg=nsg_id) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(s["step"], s["result"]) for s in plan["steps"]] == [(1, "planned"), (2, "planned"), (3, "planned")]
    assert local_azure.count(method="PUT") == 0


def test_restore_undoes_the_deny_before_the_allow(local_azure: LocalAzure, env: Any, nsg_id: str, tmp_path: Any):
    from shared.azure.rulestore import restore_from_file

    rows = tmp_path / "rows.jsonl"
    assert migrate("--confirm-connected", "--rows-out", str(rows), nsg=nsg_id) == 0
    steps = restore_from_file(str(rows))
    assert [(s.op, s.rule_name, s.status) for s in steps] == [
        ("delete", DENY_22, "done"), ("delete", f"{ALLOW_PREFIX}50022", "done")]
    assert exposure(local_azure, nsg_id, 22) == "internet"


def test_to_port_22_is_an_input_error(local_azure: LocalAzure, env: Any, nsg_id: str):
    assert main(["migrate-ssh", nsg_id, "--to-port", "22", "--from", "203.0.113.0/24"]) == 2
