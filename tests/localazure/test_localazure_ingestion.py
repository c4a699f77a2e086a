"""Logs Ingestion stand-in driven by the real LogsIngestionClient."""

from __future__ import annotations

import gzip
import io
import json
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from localazure.ingestion import DEFAULT_SCHEMA_PATH


def row(i: int = 0, **extra):
    r = {
        "TimeGenerated": "2025-01-01T00:00:00Z",
        "RowId": str(uuid.uuid4()),
        "RecordType": "finding",
        "Port": 22,
        "Active": True,
        "Sources": ["*"],
        "Details": {"i": i},
    }
    r.update(extra)
    return r


def post(azure, body: bytes, *, gzip_body: bool = False, stream=None, dcr=None):
    headers = {"Authorization": f"Bearer {azure.token}", "Content-Type": "application/json"}
    if gzip_body:
        headers["Content-Encoding"] = "gzip"
    url = f"{azure.url}/dataCollectionRules/{dcr or azure.dcr_id}/streams/{stream or azure.stream}"
    return requests.post(f"{url}?api-version=2023-01-01", data=body, headers=headers, verify=azure.ca_path)


def test_stream_and_columns_come_from_schema(local_azure):
    doc = json.loads(DEFAULT_SCHEMA_PATH.read_text())
    assert local_azure.stream == doc["stream"]
    assert local_azure.ingestion.dcrs[local_azure.dcr_id][doc["stream"]]["Port"] == "int"


def test_upload_via_client_is_gzipped_and_stored(local_azure, ingestion_client, tmp_path):
    rows = [row(i) for i in range(10)]
    ingestion_client.upload(rule_id=local_azure.dcr_id, stream_name=local_azure.stream, logs=rows)
    assert local_azure.ingested(local_azure.stream) == rows
    assert [c.gzip for c in local_azure.ingestion.calls] == [True]
    lines = (tmp_path / "ingested" / f"{local_azure.stream}.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == rows


def test_upload_plain_stream_via_client(local_azure, ingestion_client):
    rows = [row(i) for i in range(3)]
    ingestion_client.upload(local_azure.dcr_id, local_azure.stream, io.BytesIO(json.dumps(rows).encode()))
    assert local_azure.ingested() == rows
    assert [c.gzip for c in local_azure.ingestion.calls] == [False]


def test_ingestion_client_scope(local_azure):
    cred = local_azure.credential()
    client = local_azure.ingestion_client(credential=cred)
    client.upload(local_azure.dcr_id, local_azure.stream, [row()])
    # azure-monitor-ingestion 1.1.0 asks for this scope (single slash; the doc's "//.default" form is the
    # audience "https://monitor.azure.com/" + "/.default")
    assert cred.requested_scopes == [("https://monitor.azure.com/.default",)]


def test_large_upload_is_split_into_chunks(local_azure, ingestion_client):
    filler = "x" * 2000
    rows = [row(i, Reason=filler) for i in range(1500)]  # ~3.2 MB of JSON
    ingestion_client.upload(local_azure.dcr_id, local_azure.stream, rows)
    assert len(local_azure.ingestion.calls) >= 3
    assert all(c.gzip for c in local_azure.ingestion.calls)
    assert local_azure.count("ingest", status=204) == len(local_azure.ingestion.calls)
    assert [r["Details"]["i"] for r in local_azure.ingested()] == list(range(1500))


def test_raw_oversize_post_is_413(local_azure):
    body = json.dumps([row(i, Reason="y" * 5000) for i in range(250)]).encode()
    assert len(body) > 1024 * 1024
    resp = post(local_azure, body)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "ContentLengthLimitExceeded"
    assert local_azure.ingested() == []


def test_raw_gzip_post(local_azure):
    resp = post(local_azure, gzip.compress(json.dumps([row()]).encode()), gzip_body=True)
    assert resp.status_code == 204 and len(local_azure.ingested()) == 1


def test_unknown_column_is_400_naming_the_column(local_azure, ingestion_client):
    with pytest.raises(HttpResponseError) as err:
        ingestion_client.upload(local_azure.dcr_id, local_azure.stream, [row(Bogus=1)])
    assert err.value.status_code == 400
    assert "Bogus" in str(err.value)
    assert local_azure.ingested() == []


@pytest.mark.parametrize(
    "bad",
    [{"Port": "22"}, {"Port": 2**40}, {"Active": "yes"}, {"TimeGenerated": "yesterday"}, {"RowId": 5}],
)
def test_type_mismatch_is_400(local_azure, bad):
    resp = post(local_azure, json.dumps([row(**bad)]).encode())
    assert resp.status_code == 400
    assert next(iter(bad)) in resp.json()["error"]["message"]


def test_on_error_collects_failed_chunks(local_azure, ingestion_client):
    failed = []
    ingestion_client.upload(local_azure.dcr_id, local_azure.stream, [row(Bogus=1)], on_error=failed.append)
    assert len(failed) == 1 and failed[0].failed_logs[0]["Bogus"] == 1


def test_unknown_dcr_or_stream_is_404(local_azure):
    assert post(local_azure, b"[]", dcr="dcr-ffffffffffffffffffffffffffffffff").status_code == 404
    assert post(local_azure, b"[]", stream="Custom-Other").status_code == 404


def test_not_an_array_is_400(local_azure):
    assert post(local_azure, b'{"a": 1}').status_code == 400


def test_extra_stream_with_other_schema(local_azure, tmp_path):
    schema = tmp_path / "t.json"
    schema.write_text(json.dumps({"stream": "Custom-T", "columns": [{"name": "N", "type": "long"}]}))
    local_azure.ingestion.add_schema("dcr-11111111111111111111111111111111", schema)
    client = local_azure.ingestion_client()
    client.upload("dcr-11111111111111111111111111111111", "Custom-T", [{"N": 2**40}])
    assert local_azure.ingested("Custom-T") == [{"N": 2**40}]


def test_ingest_faults_surface(local_azure, ingestion_client):
    local_azure.faults.add("ingest", status=429, times=1, retry_after=0.01)
    ingestion_client.upload(local_azure.dcr_id, local_azure.stream, [row()])
    assert local_azure.count("ingest") == 2 and len(local_azure.ingested()) == 1
