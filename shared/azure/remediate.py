"""The revert's Azure side: ``AzureRuleWriter`` (rule PUT/DELETE through azure-mgmt-network, each long-running
operation awaited), the reverter built from settings, and the operator helper ``remediate_nsg``. The use case
itself is :mod:`shared.app.revert`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.app.revert import (
    CONFLICT_CODES,
    FAIL_CONFLICT,
    FAIL_GONE,
    FAIL_PERMANENT,
    FAIL_TRANSIENT,
    MODE_ENFORCE,
    MODE_OFF,
    RETRYABLE_CODES,
    RETRYABLE_STATUS,
    RevertConfig,
    Reverter,
    RevertOutcome,
    WriteFailed,
)
from shared.azure.apiversions import NETWORK
from shared.core.model import split_resource_id
from shared.core.policy import Engine

# --- the SDK adapter -------------------------------------------------------------------------------------

@contextmanager
def write_errors(what: str) -> Iterator[None]:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ResourceNotFoundError as exc:
        raise WriteFailed(f"{what}: the NSG no longer exists", FAIL_GONE, 404) from exc
    except ClientAuthenticationError as exc:
        raise WriteFailed(f"{what}: authentication failed ({type(exc).__name__})", FAIL_TRANSIENT) from exc
    except HttpResponseError as exc:
        code = getattr(getattr(exc, "error", None), "code", None) or ""
        status = exc.status_code or 0
        message = (exc.message or "").splitlines()[0][:300] if exc.message else ""
        low = code.lower()
        if low in CONFLICT_CODES or status == 412:
            kind = FAIL_CONFLICT
        elif status in RETRYABLE_STATUS or status == 0 or low in RETRYABLE_CODES:
            kind = FAIL_TRANSIENT
        else:
            kind = FAIL_PERMANENT
        raise WriteFailed(f"{what}: HTTP {status} {code}: {message}".strip(), kind, status, code or None) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise WriteFailed(f"{what}: connection failed ({type(exc).__name__})", FAIL_TRANSIENT) from exc


class AzureRuleWriter:
    """Writes security rules with azure-mgmt-network and waits for each long-running operation."""

    def __init__(self, network: Any) -> None:
        self._network = network  # shared.azure.network.AzureNetwork (one client per subscription)

    def _target(self, nsg_id: str) -> tuple[Any, str, str]:
        parts = split_resource_id(nsg_id)
        return self._network.client(parts["subscriptions"]), parts["resourcegroups"], parts["networksecuritygroups"]

    def put_rule(self, nsg_id: str, body: dict[str, Any]) -> None:
        client, rg, name = self._target(nsg_id)
        with write_errors(f"PUT rule {body['name']} in {name}"):
            client.security_rules.begin_create_or_update(rg, name, body["name"], {"properties": body["properties"]},
                                                         api_version=NETWORK).result()

    def delete_rule(self, nsg_id: str, rule_name: str) -> None:
        client, rg, name = self._target(nsg_id)
        with write_errors(f"DELETE rule {rule_name} in {name}"):
            # The Network API declares final-state-via: location for deletes: confirm at the Location URL.
            from azure.mgmt.core.polling.arm_polling import ARMPolling

            polling = ARMPolling(self._network.polling_interval, lro_options={"final-state-via": "location"})
            client.security_rules.begin_delete(rg, name, rule_name, api_version=NETWORK, polling=polling).result()


def build_reverter(settings: Any, engine: Engine, network: Any) -> Reverter | None:
    """The event path's reverter from settings (None when ``REVERT_MODE=off``)."""
    config = RevertConfig.from_settings(settings)
    if config.mode == MODE_OFF:
        return None
    writer = AzureRuleWriter(network) if config.mode == MODE_ENFORCE else None
    return Reverter(config, engine, network, writer)


def remediate_nsg(nsg_id: str, settings: Any = None, mode: str | None = None) -> RevertOutcome:
    """Read, evaluate and revert one NSG now (demo / operator helper). Settings default to the environment;
    ``mode`` overrides ``REVERT_MODE``. Nothing is sent to Log Analytics: the caller gets the records."""
    from dataclasses import replace

    from shared.app.config import Settings
    from shared.azure.credentials import make_credential
    from shared.azure.network import AzureNetwork
    from shared.azure.policyexemptions import nsg_exemption_context
    from shared.core.exemptions import exemption_context

    settings = settings or Settings.from_env()
    if mode is not None:
        settings = replace(settings, revert_mode=mode)
    engine = Engine(settings.policy)
    network = AzureNetwork(settings, make_credential(settings))
    try:
        reverter = build_reverter(settings, engine, network)
        if reverter is None:
            return RevertOutcome()
        with exemption_context(nsg_exemption_context(settings, network, nsg_id)):  # approvals hold here too
            return reverter.run(reverter.evaluate(network.get_nsg(nsg_id)))
    finally:
        network.close()
