"""Nothing lost: ingestion failing after the SDK's retries -> rows parked in Blob Storage (Azurite) ->
``outbox_retry`` timer -> delivered exactly once in meaning. Real SDK clients, real Functions objects."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from localazure.server import LocalAzure
from localazure.testing import nsg_body, rule_body
from shared.app.outbox import MemoryOutboxStore, Outbox, OutboxSink, backoff
from shared.azure.ingestion import IngestionFailed
from shared.azure.wiring import event_deps
from shared.core.errors import TransientError
from tests.azurite import Azurite, azurite  # noqa: F401  (session fixture)
from tests.eventfactory import function_event
from tests.integration.conftest import function, local_env
from tests.nsgfactory import SUB, nsg, nsg_id, rule

NSG = "ci-gpu-01-nsg"
NSG_ID = nsg_id(NSG, "rg1")


@pytest.fixture
def outbox_env(local_azure: LocalAzure, azurite: Azurite, monkeypatch: pytest.MonkeyPatch  # noqa: F811
               ) -> dict[str, str]:
    container = azurite.container_name("outbox")
    values = local_env(local_azure, NSG_GUARD_STORAGE_CONNECTION_STRING=azurite.connection_string,
                       OUTBOX_CONTAINER=container, OUTBOX_RETRY_BASE_SECONDS="0")
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    event_deps.cache_clear()
    yield values
    event_deps.cache_clear()


def parked(azurite: Azurite, container: str) -> dict[str, dict[str, Any]]:  # noqa: F811
    client = azurite.service().get_container_client(container)
    if not client.exists():
        return {}
    return {b.name: {"metadata": dict(b.metadata),
                     "doc": json.loads(gzip.decompress(client.download_blob(b.name).readall()))}
            for b in client.list_blobs(include=["metadata"])}


def retry_timer() -> None:
    function("outbox_retry")(TimerRequest(past_due=False))


def test_event_rows_parked_when_ingestion_fails_then_delivered_exactly_once(
        local_azure: LocalAzure, azurite: Azurite, outbox_env: dict[str, str]):  # noqa: F811
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    local_azure.faults.add("ingest", status=503, times=None, retry_after=0.01)
    event = function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH", event_id="evt-parked")
    function("on_nsg_change")(event)  # acknowledged: the rows are safe in the outbox

    assert local_azure.ingested() == []
    (item,) = parked(azurite, outbox_env["OUTBOX_CONTAINER"]).values()
    assert item["doc"]["origin"] == "event:evt-parked" and len(item["doc"]["rows"]) == 2
    assert "503" in item["metadata"]["lasterror"]

    retry_timer()  # still failing: kept, attempts counted
    (item,) = parked(azurite, outbox_env["OUTBOX_CONTAINER"]).values()
    assert item["metadata"]["attempts"] == "1"

    local_azure.faults.reset()
    retry_timer()
    assert parked(azurite, outbox_env["OUTBOX_CONTAINER"]) == {}
    delivered = local_azure.ingested()
    assert sorted(r["RowId"] for r in delivered) == sorted(r["RowId"] for r in item["doc"]["rows"])
    assert {r["RecordType"] for r in delivered} == {"finding", "evaluation"}
    retry_timer()  # nothing left: nothing sent twice
    assert len(local_azure.ingested()) == 2


def test_redelivered_event_while_ingestion_is_down_parks_one_item(
        local_azure: LocalAzure, azurite: Azurite, outbox_env: dict[str, str]):  # noqa: F811
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    local_azure.faults.add("ingest", status=500, times=None, retry_after=0.01)
    event = function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH", event_id="evt-twice")
    function("on_nsg_change")(event)
    function("on_nsg_change")(event)
    assert len(parked(azurite, outbox_env["OUTBOX_CONTAINER"])) == 1  # same RowIds -> same blob


def test_parking_failing_too_raises_so_event_grid_redelivers(
        local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    env = {**local_env(local_azure, NSG_GUARD_STORAGE_CONNECTION_STRING=(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{dead_port}/devstoreaccount1;")), "SDK_RETRY_TOTAL": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    event_deps.cache_clear()
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    local_azure.faults.add("ingest", status=503, times=None, retry_after=0.01)
    try:
        with pytest.raises(TransientError, match="could not park"):
            function("on_nsg_change")(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    finally:
        event_deps.cache_clear()


def test_sweep_rows_parked_then_retried(local_azure: LocalAzure, azurite: Azurite,  # noqa: F811
                                        outbox_env: dict[str, str]):
    for i in range(5):
        local_azure.seed_nsg(nsg_body(SUB, "rg", f"n{i}", [("AllowSSH", rule_body(300, "22", "*"))]))
    local_azure.faults.add("ingest", status=503, times=None, retry_after=0.01)
    function("nightly_sweep")(TimerRequest(past_due=False))  # completes: everything parked
    items = parked(azurite, outbox_env["OUTBOX_CONTAINER"])
    assert len(items) == 1
    (item,) = items.values()
    assert item["doc"]["origin"].startswith("sweep:") and len(item["doc"]["rows"]) == 11

    local_azure.faults.reset()
    retry_timer()
    delivered = local_azure.ingested()
    assert len(delivered) == 11 and len({r["RowId"] for r in delivered}) == 11
    (summary,) = [r for r in delivered if r["RecordType"] == "sweep"]
    assert summary["Details"]["nsgs"] == 5


# --- outbox logic with the in-memory store (partial acceptance, backoff) ------------------------------

class FlakySink:
    """Accepts rows except those whose RowId is in ``reject`` (like IngestionFailed.failed_rows)."""

    def __init__(self, reject: set[str]) -> None:
        self.reject = reject
        self.accepted: list[dict[str, Any]] = []

    def send(self, rows: list[dict[str, Any]]) -> None:
        bad = [r for r in rows if r["RowId"] in self.reject]
        self.accepted.extend(r for r in rows if r["RowId"] not in self.reject)
        if bad:
            raise IngestionFailed(f"{len(bad)} rows not accepted", bad)


def test_partial_acceptance_parks_exactly_the_rejected_rows_and_backs_off():
    now = [datetime(2026, 11, 26, 2, 0, tzinfo=UTC)]
    outbox = Outbox(MemoryOutboxStore(), clock=lambda: now[0])
    rows = [{"RowId": f"r{i}", "SweepId": "s1"} for i in range(6)]
    sink = FlakySink({"r1", "r4"})
    OutboxSink(sink, outbox).send(rows)
    (item,) = outbox.pending()
    assert json.loads(gzip.decompress(outbox.store.get(item.name)))["rows"] == [rows[1], rows[4]]
    assert item.next_attempt == now[0] + backoff(1) and item.name.startswith("sweep/2026/11/26/")

    assert outbox.retry(sink).delivered == []  # not due yet
    now[0] += timedelta(minutes=1)
    sink.reject = {"r4"}
    report = outbox.retry(sink)
    assert report.delivered_rows == 1 and report.remaining == 1
    (item,) = outbox.pending()
    assert json.loads(gzip.decompress(outbox.store.get(item.name)))["rows"] == [rows[4]]
    assert item.attempts == 1 and item.next_attempt == now[0] + backoff(2)

    now[0] += timedelta(hours=1)
    sink.reject = set()
    assert outbox.retry(sink).summary()["deliveredRows"] == 1
    assert sorted(r["RowId"] for r in sink.accepted) == [f"r{i}" for i in range(6)]  # each row once
    assert outbox.pending() == []


def test_backoff_doubles_and_is_capped():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert backoff(30).total_seconds() == 6 * 3600
