"""The policyExemptions stand-in speaks ARM's wire format: RBAC 403s, api-versions, atScope() listing, systemData,
and Resource Graph ``policyresources`` rows; driven through the real SDK pipeline."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.rest import HttpRequest

from localazure.eventgrid import LOCAL_DEVELOPER, Principal
from localazure.server import LocalAzure

SUB = "2c1e3d4f-0000-4000-8000-00000000a11c"
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg1"
NSG = f"{RG_SCOPE}/providers/Microsoft.Network/networkSecurityGroups/nsg1"
OTHER_NSG = f"{RG_SCOPE}/providers/Microsoft.Network/networkSecurityGroups/nsg2"
API = "2024-12-01-preview"
ASSIGNMENT = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/nsg-guard-internet-ssh"
PROPS = {"policyAssignmentId": ASSIGNMENT, "exemptionCategory": "Waiver", "expiresOn": "2030-01-01T00:00:00Z",
         "metadata": {"nsgGuard": {"rules": []}}}


def send(azure: LocalAzure, method: str, url: str, body: Any = None, credential: Any = None) -> Any:
    client = azure.network_client(SUB, credential=credential)
    request = HttpRequest(method, url, json=body) if body is not None else HttpRequest(method, url)
    return client.send_request(request)


def put(azure: LocalAzure, scope: str, name: str, credential: Any = None, api: str = API) -> Any:
    return send(azure, "PUT", f"{scope}/providers/Microsoft.Authorization/policyExemptions/{name}?api-version={api}",
                {"properties": PROPS}, credential)


def test_put_without_the_rights_is_403_authorization_failed(local_azure: LocalAzure):
    response = put(local_azure, NSG, "e1")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "AuthorizationFailed" and "policyExemptions/write" in error["message"]
    local_azure.policy_exemptions.grant(LOCAL_DEVELOPER.object_id, "Microsoft.Authorization/policyExemptions/write")
    response = put(local_azure, NSG, "e1")
    assert response.status_code == 403 and "policyAssignments/exempt/action" in response.json()["error"]["message"]
    assert local_azure.policy_exemptions.all() == []


def test_put_with_the_rights_stores_it_with_system_data(local_azure: LocalAzure):
    secops = local_azure.add_principal("secops", Principal(upn="secops@contoso.example",
                                                           object_id="5e1f0b2a-0000-4000-8000-0000000005ec"))
    local_azure.policy_exemptions.grant("5e1f0b2a-0000-4000-8000-0000000005ec")
    created = put(local_azure, NSG, "e1", secops)
    assert created.status_code == 201
    body = created.json()
    assert body["id"] == f"{NSG}/providers/Microsoft.Authorization/policyExemptions/e1"
    assert body["systemData"]["createdBy"] == "secops@contoso.example" and body["properties"] == PROPS
    assert put(local_azure, NSG, "e1", secops).status_code == 200  # update keeps createdAt
    got = send(local_azure, "GET", f"{body['id']}?api-version={API}").json()
    assert got["systemData"]["createdAt"] == body["systemData"]["createdAt"]


@pytest.mark.parametrize(("api", "status", "code"), [("2020-01-01", 400, "InvalidApiVersionParameter"),
                                                     ("", 400, "MissingApiVersionParameter")])
def test_api_version_is_checked(local_azure: LocalAzure, api, status, code):
    local_azure.policy_exemptions.grant(LOCAL_DEVELOPER.object_id)
    response = put(local_azure, NSG, "e1", api=api)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_list_at_scope_returns_the_scope_and_above_only(local_azure: LocalAzure):
    store = local_azure.policy_exemptions
    scopes = ((NSG, "on-nsg"), (RG_SCOPE, "on-rg"), (OTHER_NSG, "on-other"), (f"/subscriptions/{SUB}", "sub"))
    for scope, name in scopes:
        store.seed(scope, name, PROPS)
    url = f"{NSG}/providers/Microsoft.Authorization/policyExemptions?api-version={API}&$filter=atScope()"
    names = sorted(e["name"] for e in send(local_azure, "GET", url).json()["value"])
    assert names == ["on-nsg", "on-rg", "sub"]
    store.update(f"{RG_SCOPE}/providers/Microsoft.Authorization/policyExemptions/on-rg",
                 expiresOn="2020-01-01T00:00:00Z")
    url += " and excludeExpired()"
    assert sorted(e["name"] for e in send(local_azure, "GET", url).json()["value"]) == ["on-nsg", "sub"]


def test_resource_graph_serves_policyresources_rows(local_azure: LocalAzure):
    local_azure.policy_exemptions.seed(NSG, "e1", PROPS)
    result = local_azure.graph_client().resources(
        {"subscriptions": [SUB], "query": "policyresources | where type =~ 'microsoft.authorization/policyexemptions'",
         "options": {"resultFormat": "objectArray"}})
    (row,) = result.data
    assert row["type"] == "microsoft.authorization/policyexemptions" and row["subscriptionId"] == SUB
    assert row["properties"]["policyAssignmentId"] == ASSIGNMENT and "systemData" not in row
