"""``nsg-guard replay-deadletter`` end to end: dead-letter blobs in Azurite (Event Grid's layout and
format) -> the event handler -> real SDK clients -> the stand-ins."""

from __future__ import annotations

import json

import pytest

from localazure.server import LocalAzure
from shared.azure.wiring import event_deps
from shared.cli import main
from tests.azurite import Azurite, azurite  # noqa: F401  (session fixture)
from tests.eventfactory import event_dict
from tests.integration.conftest import local_env
from tests.nsgfactory import nsg, nsg_id, rule

NSG = "ci-gpu-01-nsg"
NSG_ID = nsg_id(NSG, "rg1")
METADATA = {"deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
            "lastDeliveryOutcome": "TimedOut", "lastHttpStatusCode": 408,
            "publishTime": "2026-11-26T01:59:00.1234567Z", "lastDeliveryAttemptTime": "2026-11-27T01:59:00Z"}


@pytest.fixture
def dl(local_azure: LocalAzure, azurite: Azurite, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    container = azurite.container_name("deadletter")
    azurite.service().create_container(container)
    for key, value in local_env(local_azure, NSG_GUARD_STORAGE_CONNECTION_STRING=azurite.connection_string,
                                DEADLETTER_CONTAINER=container).items():
        monkeypatch.setenv(key, value)
    event_deps.cache_clear()
    yield azurite.service().get_container_client(container)
    event_deps.cache_clear()


def dead_letter(*event_ids: str) -> bytes:
    events = [{**event_dict("eventgrid-rule-write.json", NSG_ID, "AllowSSH", event_id=e), **METADATA}
              for e in event_ids]
    return json.dumps(events).encode()


def test_replay_handles_every_event_and_deletes_the_blob(local_azure: LocalAzure, dl, capsys):
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    name = "NSG-GUARD-NSG-CHANGES/2026/11/27/1/0f4b3a1e-0000-4000-8000-000000000001.json"
    dl.upload_blob(name, dead_letter("dl-1", "dl-2"))

    assert main(["replay-deadletter"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events"] == 2 and report["outcomes"] == {"evaluated": 2} and report["deleted"] == 1
    assert sorted({r["EventId"] for r in local_azure.ingested()}) == ["dl-1", "dl-2"]
    assert [b.name for b in dl.list_blobs()] == []

    dl.upload_blob(name, dead_letter("dl-1"))  # the same event dead-lettered again: same meaning
    before = {r["RowId"] for r in local_azure.ingested() if r["EventId"] == "dl-1"}
    assert main(["replay-deadletter", "--keep"]) == 0
    again = [r["RowId"] for r in local_azure.ingested() if r["EventId"] == "dl-1"]
    assert set(again) == before and len(again) == 2 * len(before)
    assert [b.name for b in dl.list_blobs()] == [name]  # --keep


def test_transient_failure_keeps_the_blob_for_the_next_replay(local_azure: LocalAzure, dl, capsys):
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    dl.upload_blob("SUB/2026/11/27/2/a.json", dead_letter("dl-3"))
    local_azure.faults.add("arm.get", status=503, times=None, retry_after=0.01)
    assert main(["replay-deadletter"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"][0]["event"] == "dl-3" and report["deleted"] == 0
    assert [b.name for b in dl.list_blobs()] == ["SUB/2026/11/27/2/a.json"]

    local_azure.faults.reset()
    assert main(["replay-deadletter", "--prefix", "SUB/2026/"]) == 0
    assert [b.name for b in dl.list_blobs()] == []
    assert {r["EventId"] for r in local_azure.ingested()} == {"dl-3"}


def test_dry_run_reads_without_handling(local_azure: LocalAzure, dl, capsys):
    dl.upload_blob("SUB/2026/11/27/3/b.json", dead_letter("dl-4", "dl-5"))
    assert main(["replay-deadletter", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"] == {"dry-run": 2}
    assert local_azure.count() == 0 and len(list(dl.list_blobs())) == 1
