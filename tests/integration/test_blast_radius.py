"""Blast radius across NSGs, end to end: a real func.TimerRequest -> nightly_sweep -> Resource Graph and policy
exemption stand-ins -> the revert queue on Azurite -> revert_job -> real azure-mgmt-network rule writes.

More NSGs need a revert (their exemptions expired together) than REVERT_MAX_NSGS_PER_RUN allows: exactly the
cap is written, worst first; every other one keeps its Open finding and gets a ``skipped`` row saying the cap
held it; the next sweep takes the rest."""

from __future__ import annotations

import pytest
from azure.functions.timer import TimerRequest

from localazure.functions import function
from tests.azurite import azurite  # noqa: F401
from tests.azurite_queue import azurite_queue_port, azurite_storage  # noqa: F401
from tests.exemptionfactory import expired_exemption
from tests.integration.conftest import Guard, local_env
from tests.integration.test_revert import revert  # noqa: F401
from tests.nsgfactory import nsg, nsg_id, rule

RG = "rg1"
MEDIUM = ["a0", "a1"]  # 2222 open to the internet (ssh-custom: medium), named first on purpose
HIGH = ["b0", "b1", "b2"]  # 22 open to the internet (ssh: high)
CAP = {"REVERT_MAX_NSGS_PER_RUN": "3", "SSH_PORTS": "2222", "REVERT_PORT_KINDS": "ssh,ssh-custom"}


def seed_lapsed_estate(azure) -> None:
    """Five exposed NSGs whose exemptions all expired a minute ago, and one clean NSG."""
    for name in MEDIUM + HIGH:
        port = "2222" if name in MEDIUM else "22"
        azure.seed_nsg(nsg([rule("AllowSSH", 300, port, "*", nsg=name)], name=name,
                           tags={"owner": "ml-platform@contoso.example"}))
        expired_exemption(azure, nsg_id(name, RG), ["AllowSSH"])
    azure.seed_nsg(nsg([rule("AllowVpnSSH", 300, "22", "10.0.0.0/8", nsg="clean")], name="clean"))


def ours(azure, name: str) -> list[str]:
    rules = azure.get_nsg(nsg_id(name, RG))["properties"]["securityRules"]
    return [r["name"] for r in rules if r["name"].startswith("nsg-guard-")]


def written(azure) -> set[str]:
    return {n for n in MEDIUM + HIGH if ours(azure, n)}


def sweep() -> None:
    function("nightly_sweep")(TimerRequest(past_due=False))


def sweep_rows(guard: Guard) -> list[dict]:
    """The rows of the latest sweep."""
    rows = guard.azure.ingested()
    (last,) = [r for r in rows if r["RecordType"] == "sweep"][-1:]
    return [r for r in rows if r.get("SweepId") == last["SweepId"]]


def held(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["RecordType"] == "remediation" and r["Details"].get("skipCode") == "blast-radius-nsgs"]


def check_held_rows(rows: list[dict], names: list[str], mode: str) -> None:
    rows_held = held(rows)
    assert sorted(r["NsgName"] for r in rows_held) == sorted(names)
    opened = {r["NsgName"]: r for r in rows if r["RecordType"] == "finding" and r["Status"] == "Open"
              and r["NsgName"] in names}
    for r in rows_held:  # the schema's remediation row: skipped, naming the rule and the Open finding it held
        assert (r["Result"], r["Action"], r["Mode"], r["RuleName"], r["Trigger"]) == \
            ("skipped", "skip", mode, "AllowSSH", "sweep")
        assert r["FindingId"] == opened[r["NsgName"]]["FindingId"] and r["Port"] == 2222
        assert r["Details"]["held"] is True and r["Details"]["cap"] == 3 and r["Details"]["candidates"] == 5
        assert "REVERT_MAX_NSGS_PER_RUN" in r["Details"]["reason"] and r["Details"]["severity"] == "medium"
        assert r["Owner"] == "ml-platform@contoso.example"
    assert sorted(r["Details"]["queuePosition"] for r in rows_held) == [1, 2]


def test_sweep_queues_exactly_the_cap_worst_first_and_the_next_sweep_takes_the_rest(revert):  # noqa: F811
    guard = revert("enforce", **CAP)
    seed_lapsed_estate(guard.azure)

    sweep()
    rows = sweep_rows(guard)
    assert rows[-1]["Details"]["revert"] == {"candidates": 5, "taken": 3, "held": 2, "maxNsgsPerRun": 3}
    assert guard.azure.count("arm.put") == 0  # the sweep writes nothing itself: jobs do
    run = guard.run_jobs()
    assert run.done == 3 and run.poisoned == 0
    assert written(guard.azure) == set(HIGH) and guard.azure.count("arm.put") == 3  # the high ones, not a0/a1
    check_held_rows(rows, MEDIUM, "enforce")
    evaluations = {r["NsgName"]: r for r in rows if r["RecordType"] == "evaluation"}
    assert all(evaluations[n]["OpenFindingIds"] for n in MEDIUM)  # nothing lost: still Open in the table

    sweep()  # the next run takes the rest
    rows = sweep_rows(guard)
    assert rows[-1]["Details"]["revert"] == {"candidates": 2, "taken": 2, "held": 0, "maxNsgsPerRun": 3}
    assert held(rows) == []
    assert guard.run_jobs().done == 2
    assert written(guard.azure) == set(MEDIUM + HIGH) and guard.azure.count("arm.put") == 5

    sweep()  # and then there is nothing left to do
    rows = sweep_rows(guard)
    assert rows[-1]["Details"]["revert"]["candidates"] == 0 and rows[-1]["Details"]["compliant"] == 6
    assert guard.run_jobs().done == 0 and guard.azure.count("arm.put") == 5


@pytest.fixture
def in_place(local_azure, monkeypatch):
    """The sweep without a revert queue (local runs): it reverts in place, under the same cap."""
    for key, value in local_env(local_azure, REVERT_MODE="enforce", **CAP).items():
        monkeypatch.setenv(key, value)
    return Guard(local_azure)


def test_sweep_without_a_queue_reverts_exactly_the_cap_in_place_then_the_rest(in_place):
    guard = in_place
    seed_lapsed_estate(guard.azure)

    sweep()
    rows = sweep_rows(guard)
    assert written(guard.azure) == set(HIGH) and guard.azure.count("arm.put") == 3
    check_held_rows(rows, MEDIUM, "enforce")
    results = [(r["NsgName"], r["Result"]) for r in rows if r["RecordType"] == "remediation"
               and not r["Details"].get("held")]
    assert sorted(results) == sorted([(n, res) for n in HIGH for res in ("planned", "verified")])
    evaluations = {r["NsgName"]: r for r in rows if r["RecordType"] == "evaluation"}
    assert len(evaluations) == 6 and len([r for r in rows if r["RecordType"] == "evaluation"]) == 6  # one each
    assert all(evaluations[n]["OpenFindingIds"] == [] for n in HIGH)  # as re-read after the writes
    assert all(evaluations[n]["OpenFindingIds"] for n in MEDIUM)
    summary = rows[-1]["Details"]
    assert summary["revert"]["held"] == 2 and summary["nsgs"] == 6 and summary["compliant"] == 4

    sweep()
    rows = sweep_rows(guard)
    assert written(guard.azure) == set(MEDIUM + HIGH) and guard.azure.count("arm.put") == 5
    assert held(rows) == [] and rows[-1]["Details"]["compliant"] == 6


def test_dry_run_sweep_holds_the_same_nsgs_and_writes_nothing(local_azure, monkeypatch):
    for key, value in local_env(local_azure, REVERT_MODE="dry-run", **CAP).items():
        monkeypatch.setenv(key, value)
    guard = Guard(local_azure)
    seed_lapsed_estate(local_azure)
    sweep()
    rows = sweep_rows(guard)
    assert guard.azure.count("arm.put") == 0
    check_held_rows(rows, MEDIUM, "dry-run")
    planned = {r["NsgName"] for r in rows if r["RecordType"] == "remediation" and r["Result"] == "planned"}
    assert planned == set(HIGH)
