"""The REST API versions NSG Guard speaks, pinned in one place (every client passes them explicitly).

An SDK upgrade (Flex Consumption's remote build installs what requirements.txt allows) must never change the
wire format under us: these are the versions the code and the stand-ins were tested with.
"""

NETWORK = "2024-05-01"  # Microsoft.Network: NSGs, security rules, long-running operation polls
RESOURCE_GRAPH = "2022-10-01"  # Microsoft.ResourceGraph/resources
LOGS_INGESTION = "2023-01-01"  # Logs Ingestion API (data collection rule streams)
STORAGE = "2026-10-06"  # Blob service (x-ms-version): the outbox and dead letters
