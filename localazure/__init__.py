"""Local HTTPS stand-ins for the Azure services NSG Guard talks to.

ARM Network (NSGs), Resource Graph and the Logs Ingestion API, on one port.

Real Azure SDK clients talk to them unchanged::

    import localazure

    with localazure.start() as azure:                      # https://127.0.0.1:<ephemeral port>
        azure.seed_nsg(body)                               # ARM NSG body (shape of arm-nsg-get.json)
        net = NetworkManagementClient(azure.credential(), "sub1", base_url=azure.url,
                                      connection_verify=azure.ca_path, polling_interval=0.01)
        # or simply: net = azure.network_client("sub1")

See ``localazure/README.md`` for the full API and what is not emulated.
"""

from .auth import DEFAULT_TOKEN, StaticTokenCredential
from .faults import Fault, FaultInjector, RequestInfo
from .ingestion import DEFAULT_DCR_ID
from .server import LocalAzure, RequestRecord, start
from .validation import ArmError

__all__ = [
    "DEFAULT_DCR_ID",
    "DEFAULT_TOKEN",
    "ArmError",
    "Fault",
    "FaultInjector",
    "LocalAzure",
    "RequestInfo",
    "RequestRecord",
    "StaticTokenCredential",
    "start",
]
