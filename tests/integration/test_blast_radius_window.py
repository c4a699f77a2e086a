"""The rolling blast-radius window of revert jobs (REVERT_MAX_NSGS_PER_WINDOW), end to end: real Event Grid
events -> on_nsg_change -> the revert queue on Azurite -> revert_job (several concurrent receivers, like a
scaled-out app) -> real azure-mgmt-network writes; the window lives in an Azurite blob beside the leases.

A burst of changes on more NSGs than the window allows: exactly the cap is written; every other job records
``skipped`` rows (``blast-radius-nsgs``) and goes back on the queue, invisible until the window has room; a new
worker instance sees the same count; an NSG already written in the window is not counted twice."""

from __future__ import annotations

import json
import os

from localazure.functions import function
from localazure.queuehost import drain
from tests.azurite import azurite  # noqa: F401
from tests.azurite_queue import azurite_queue_port, azurite_storage  # noqa: F401
from tests.eventfactory import function_event
from tests.integration.test_revert import revert  # noqa: F401
from tests.nsgfactory import nsg, nsg_id, rule

RG = "rg1"
NAMES = ["w0", "w1", "w2", "w3"]


def seed(azure, names=NAMES) -> None:
    for name in names:
        azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=name)], name=name))


def event(name: str, rule_name: str = "AllowSSH"):
    return function_event("eventgrid-rule-write.json", nsg_id(name, RG), rule_name)


def ours(azure, name: str) -> list[str]:
    rules = azure.get_nsg(nsg_id(name, RG))["properties"]["securityRules"]
    return [r["name"] for r in rules if r["name"].startswith("nsg-guard-")]


def written(azure, names=NAMES) -> set[str]:
    return {n for n in names if ours(azure, n)}


def jobs(guard, rounds: int = 1, workers: int = 1):
    """Run the queue trigger; ``rounds=1`` stops soon after only invisible (held) messages are left."""
    return drain(guard.storage.connection_string, "nsg-guard-revert", function("revert_job"), workers=workers,
                 rounds=rounds)


def held_rows(guard) -> list[dict]:
    return [r for r in guard.rows(RecordType="remediation") if r["Details"].get("skipCode") == "blast-radius-nsgs"]


def window_slots(guard) -> dict:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(guard.storage.connection_string)
    blob = service.get_blob_client(os.environ["REVERT_LOCK_CONTAINER"], "blast-radius-window.json")
    return json.loads(blob.download_blob().readall())["slots"]


def test_burst_of_events_writes_exactly_the_window_cap_and_requeues_the_rest(revert):  # noqa: F811
    guard = revert("enforce", REVERT_MAX_NSGS_PER_WINDOW="2", REVERT_WINDOW_SECONDS="600")
    seed(guard.azure)
    for name in NAMES:
        function("on_nsg_change")(event(name))  # rows first, one job each
    run = jobs(guard, workers=3)  # concurrent receivers share the window through the blob's ETag
    assert run.failed == 0 and run.poisoned == 0 and run.done == 4
    done = written(guard.azure)
    assert len(done) == 2 and guard.azure.count("arm.put") == 2 and len(window_slots(guard)) == 2
    rows = held_rows(guard)
    assert {r["NsgName"] for r in rows} == set(NAMES) - done
    for r in rows:  # what would have been written, as a skipped action of the row schema
        assert (r["Result"], r["Action"], r["Mode"], r["RuleName"]) == ("skipped", "put", "enforce", "AllowSSH")
        assert r["RuleAfter"]["name"].startswith("nsg-guard-deny-22-") and r["Details"]["held"] is True
        assert r["Details"]["cap"] == 2 and r["Details"]["windowSeconds"] == 600 and r["Details"]["retryAt"]
        assert "REVERT_MAX_NSGS_PER_WINDOW" in r["Details"]["reason"] and r["FindingId"]
    # Nothing lost: the held NSGs' findings are Open in the table and their jobs wait, invisible, in the queue.
    opened = {r["NsgName"] for r in guard.rows(RecordType="finding") if r["Status"] == "Open"}
    assert set(NAMES) - done <= opened
    assert guard.storage.queue("nsg-guard-revert").get_queue_properties().approximate_message_count == 2
    assert not [r for r in guard.rows(RecordType="remediation") if r["Result"] in ("applied", "verified")
                and r["NsgName"] not in done]


def test_window_is_durable_across_worker_instances_and_counts_an_nsg_once(revert):  # noqa: F811
    from shared.azure.wiring import job_deps

    guard = revert("enforce", REVERT_MAX_NSGS_PER_WINDOW="1", REVERT_WINDOW_SECONDS="600")
    seed(guard.azure, ["w0", "w1"])
    function("on_nsg_change")(event("w0"))
    assert jobs(guard).done == 1 and written(guard.azure, ["w0", "w1"]) == {"w0"}
    job_deps.cache_clear()  # a new worker instance: nothing in memory, the count is in Storage
    function("on_nsg_change")(event("w1"))
    assert jobs(guard).done == 1 and written(guard.azure, ["w0", "w1"]) == {"w0"}
    assert [r["NsgName"] for r in held_rows(guard)] == ["w1"]
    # The owner of w0 opens 22 again with a new rule: w0 is already in the window, so it is reverted at once.
    guard.azure.update_nsg(nsg_id("w0", RG), lambda body: body["properties"]["securityRules"].append(
        rule("AllowSSHAgain", 200, "22", "*", nsg="w0")))  # in front of our deny
    function("on_nsg_change")(event("w0", "AllowSSHAgain"))
    jobs(guard)
    assert len(ours(guard.azure, "w0")) == 2 and len(window_slots(guard)) == 1


def test_held_job_runs_again_when_the_window_has_room(revert):  # noqa: F811
    guard = revert("enforce", REVERT_MAX_NSGS_PER_WINDOW="1", REVERT_WINDOW_SECONDS="2")
    seed(guard.azure, ["w0", "w1"])
    for name in ("w0", "w1"):
        function("on_nsg_change")(event(name))
    run = jobs(guard, rounds=50)  # waits for the requeued job to become visible (about 2 s later)
    assert run.failed == 0 and run.done == 3  # two jobs, one of them twice (held, then done)
    assert written(guard.azure, ["w0", "w1"]) == {"w0", "w1"} and guard.azure.count("arm.put") == 2
    (held,) = held_rows(guard)
    later = [r for r in guard.rows(RecordType="remediation", NsgName=held["NsgName"]) if r["Result"] == "verified"]
    assert later and later[0]["TimeGenerated"] >= held["Details"]["retryAt"][:19]
