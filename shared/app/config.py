"""Settings from environment variables, validated once at first use (never at import time).

Every setting the app reads is here, with its default; README "Settings" and infra/ mirror this list.
A bad value is a :class:`ConfigError` that names the variable: the app refuses to run half-configured.

Read by the Functions host, not by this module (timer schedules, NCRONTAB with seconds, UTC):
``SWEEP_SCHEDULE`` (``%SWEEP_SCHEDULE%`` of ``nightly_sweep``; default ``0 0 2 * * *`` = 02:00 UTC, set by
infra/ and local.settings.json) and ``OUTBOX_SCHEDULE`` (``%OUTBOX_SCHEDULE%`` of ``outbox_retry``; default
``0 */5 * * * *``). The host refuses to start a timer whose setting is missing, so both must be set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from shared.core.addresses import DEFAULT_PUBLIC, AddressSet, parse_cidr, public_space
from shared.core.errors import ConfigError, InputError
from shared.core.exemptions import ExemptionSettings
from shared.core.policy import DEFAULT_MANAGEMENT_PORTS, Policy, parse_port_list, watched_ports

AUTH_MODES = ("managed-identity", "default", "local")
REVERT_MODES = ("off", "dry-run", "enforce")
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
#: ARM endpoint host -> (ARM token audience, Logs Ingestion token audience) of the known clouds.
CLOUD_AUDIENCES = {
    "management.azure.com": ("https://management.azure.com", "https://monitor.azure.com"),
    "management.chinacloudapi.cn": ("https://management.chinacloudapi.cn", "https://monitor.azure.cn"),
    "management.usgovcloudapi.net": ("https://management.core.usgovcloudapi.net", "https://monitor.azure.us"),
}
DEFAULT_STREAM = "Custom-NsgGuardFindings"
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Settings:
    auth: str = "managed-identity"
    client_id: str | None = None
    local_token: str | None = None
    ca_bundle: str | None = None
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    logs_endpoint: str | None = None
    dcr_immutable_id: str | None = None
    stream_name: str = DEFAULT_STREAM
    ssh_ports: tuple[int, ...] = ()
    management_ports: tuple[int, ...] = DEFAULT_MANAGEMENT_PORTS
    extra_service_tags: frozenset[str] = frozenset()
    extra_private_ranges: tuple[str, ...] = ()
    revert_mode: str = "off"
    revert_max_changes: int = 10
    revert_port_kinds: tuple[str, ...] = ("ssh",)
    exempt_tag: str = "nsg-guard-exempt"
    owner_tag: str = "owner"
    sweep_subscriptions: tuple[str, ...] = ()
    sweep_management_groups: tuple[str, ...] = ()
    sweep_batch_rows: int = 5000
    outbox_retry_base_s: int = 60
    outbox_blob_endpoint: str | None = None
    outbox_container: str = "nsg-guard-outbox"
    deadletter_container: str = "eventgrid-deadletter"
    storage_connection_string: str | None = field(default=None, repr=False)
    retry_total: int = 3
    retry_backoff: float = 0.8
    public: AddressSet = field(default=DEFAULT_PUBLIC, repr=False)
    # --- revert queue and guards (docs/revert.md) ---
    revert_queue_endpoint: str | None = None  # REVERT_QUEUE__queueServiceUri (also the trigger's connection)
    revert_strategies: tuple[str, ...] = ("insert-deny",)
    revert_lock_container: str = "nsg-guard-locks"
    jit_principals: frozenset[str] = frozenset()  # object/app ids of the JIT service (JIT_PRINCIPAL_IDS)
    arm_audience: str = "https://management.azure.com"
    logs_audience: str = "https://monitor.azure.com"
    authz_retry_s: int = 20
    exemptions: ExemptionSettings = field(default_factory=ExemptionSettings)
    revert_max_nsgs_per_run: int = 25  # REVERT_MAX_NSGS_PER_RUN: NSGs one run (sweep, remediate) may write
    revert_max_nsgs_per_window: int = 100  # REVERT_MAX_NSGS_PER_WINDOW: NSGs revert jobs may write per window
    revert_window_seconds: int = 3600  # REVERT_WINDOW_SECONDS: that rolling window

    @property
    def policy(self) -> Policy:
        return Policy(watched=watched_ports(self.ssh_ports, self.management_ports), public=self.public,
                      extra_service_tags=self.extra_service_tags)

    @property
    def local(self) -> bool:
        return self.auth == "local"

    def require_ingestion(self) -> tuple[str, str, str]:
        """Endpoint, DCR id and stream, or a ConfigError naming what is missing."""
        missing = [name for name, value in (("LOGS_INGESTION_ENDPOINT", self.logs_endpoint),
                                            ("LOGS_DCR_IMMUTABLE_ID", self.dcr_immutable_id)) if not value]
        if missing:
            raise ConfigError(f"Log Analytics ingestion is not configured: set {', '.join(missing)}")
        return self.logs_endpoint, self.dcr_immutable_id, self.stream_name  # type: ignore[return-value]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        def choice(name: str, choices: tuple[str, ...], default: str) -> str:
            value = get(name, default).lower() or default
            if value not in choices:
                problems.append(f"{name}={value!r}: expected one of {', '.join(choices)}")
                return default
            return value

        def ports(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
            if name not in env:
                return default
            try:
                return parse_port_list(env[name], name)
            except ConfigError as exc:
                problems.append(str(exc))
                return default

        def integer(name: str, default: int, low: int, high: int) -> int:
            text = get(name)
            if not text:
                return default
            if not text.isdigit() or not low <= int(text) <= high:
                problems.append(f"{name}={text!r}: expected a whole number from {low} to {high}")
                return default
            return int(text)

        def csv(name: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in get(name).split(",") if p.strip())

        def url(name: str, default: str | None = None) -> str | None:
            value = get(name) or default
            if value is None:
                return None
            parsed = urlparse(value)
            if parsed.scheme not in ("https", "http") or not parsed.netloc:
                problems.append(f"{name}={value!r}: expected an https:// URL")
                return None
            return value.rstrip("/")

        auth = choice("NSG_GUARD_AUTH", AUTH_MODES, "managed-identity")
        backoff = 0.8
        if get("SDK_RETRY_BACKOFF"):
            try:
                backoff = float(get("SDK_RETRY_BACKOFF"))
                if not 0 <= backoff <= 60:
                    raise ValueError
            except ValueError:
                problems.append(f"SDK_RETRY_BACKOFF={get('SDK_RETRY_BACKOFF')!r}: expected seconds from 0 to 60")
                backoff = 0.8
        ssh = ports("SSH_PORTS", ())
        mgmt = ports("MANAGEMENT_PORTS", DEFAULT_MANAGEMENT_PORTS)
        try:
            watched_ports(ssh, mgmt)
        except ConfigError as exc:
            problems.append(f"SSH_PORTS/MANAGEMENT_PORTS: {exc}")
        kinds = tuple(k.lower() for k in csv("REVERT_PORT_KINDS")) or ("ssh",)
        for kind in kinds:
            if kind not in ("ssh", "ssh-custom", "management"):
                problems.append(f"REVERT_PORT_KINDS: {kind!r} is not one of ssh, ssh-custom, management")
        private = csv("EXTRA_PRIVATE_RANGES")
        public = DEFAULT_PUBLIC
        try:
            for cidr in private:
                parse_cidr(cidr)
            public = public_space(private) if private else DEFAULT_PUBLIC
        except InputError as exc:
            problems.append(f"EXTRA_PRIVATE_RANGES: {exc}")
        for tag_setting in ("EXEMPT_TAG", "OWNER_TAG"):
            if get(tag_setting) and not _TAG_NAME.match(get(tag_setting)):
                problems.append(f"{tag_setting}={get(tag_setting)!r}: not a valid tag name")
        exemption_settings = ExemptionSettings(tag_name=get("EXEMPT_TAG") or "nsg-guard-exempt")
        try:
            exemption_settings = ExemptionSettings.from_env(env, exemption_settings.tag_name)
        except ConfigError as exc:
            problems.append(str(exc).removeprefix("invalid settings: "))

        settings = cls(
            auth=auth,
            client_id=get("AZURE_CLIENT_ID") or None,
            local_token=get("NSG_GUARD_LOCAL_TOKEN") or None,
            ca_bundle=get("NSG_GUARD_CA_BUNDLE") or None,
            arm_endpoint=url("ARM_ENDPOINT", DEFAULT_ARM_ENDPOINT) or DEFAULT_ARM_ENDPOINT,
            logs_endpoint=url("LOGS_INGESTION_ENDPOINT"),
            dcr_immutable_id=get("LOGS_DCR_IMMUTABLE_ID") or None,
            stream_name=get("LOGS_STREAM_NAME") or DEFAULT_STREAM,
            ssh_ports=ssh, management_ports=mgmt,
            extra_service_tags=frozenset(t.lower() for t in csv("EXTRA_SERVICE_TAGS")),
            extra_private_ranges=private,
            revert_mode=choice("REVERT_MODE", REVERT_MODES, "off"),
            revert_max_changes=integer("REVERT_MAX_CHANGES", 10, 0, 1000),
            revert_port_kinds=kinds,
            exempt_tag=get("EXEMPT_TAG") or "nsg-guard-exempt",
            owner_tag=get("OWNER_TAG") or "owner",
            sweep_subscriptions=csv("SWEEP_SUBSCRIPTIONS"),
            sweep_management_groups=csv("SWEEP_MANAGEMENT_GROUPS"),
            sweep_batch_rows=integer("SWEEP_BATCH_ROWS", 5000, 100, 100000),
            outbox_retry_base_s=integer("OUTBOX_RETRY_BASE_SECONDS", 60, 0, 86400),
            outbox_blob_endpoint=url("OUTBOX_BLOB_ENDPOINT"),
            outbox_container=get("OUTBOX_CONTAINER") or "nsg-guard-outbox",
            deadletter_container=get("DEADLETTER_CONTAINER") or "eventgrid-deadletter",
            storage_connection_string=get("NSG_GUARD_STORAGE_CONNECTION_STRING") or None,
            retry_total=integer("SDK_RETRY_TOTAL", 3, 0, 20),
            retry_backoff=backoff,
            public=public,
            **_cloud_settings(get, url, integer, problems),
            exemptions=exemption_settings,
        )
        if settings.local:
            if not settings.local_token:
                problems.append("NSG_GUARD_AUTH=local needs NSG_GUARD_LOCAL_TOKEN (the stand-ins' static token)")
            for name, value in (("ARM_ENDPOINT", settings.arm_endpoint),
                                ("LOGS_INGESTION_ENDPOINT", settings.logs_endpoint),
                                ("OUTBOX_BLOB_ENDPOINT", settings.outbox_blob_endpoint)):
                if value and urlparse(value).hostname not in ("127.0.0.1", "localhost", "::1"):
                    problems.append(f"NSG_GUARD_AUTH=local only talks to loopback stand-ins; {name} is {value}")
        elif settings.local_token or settings.storage_connection_string:
            problems.append("NSG_GUARD_LOCAL_TOKEN / NSG_GUARD_STORAGE_CONNECTION_STRING are only for "
                            "NSG_GUARD_AUTH=local; Azure deployments use managed identity")
        settings = _revert_settings(settings, get, csv, url, problems)
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return settings


def _revert_settings(settings: Settings, get, csv, url, problems: list[str]) -> Settings:  # type: ignore[no-untyped-def]
    """Revert queue, strategies and JIT identities (kept apart so the main parser stays as it was)."""
    from dataclasses import replace

    strategies = tuple(s.lower() for s in csv("REVERT_STRATEGIES")) or ("insert-deny",)
    for s in strategies:
        if s not in ("insert-deny", "narrow", "shift"):
            problems.append(f"REVERT_STRATEGIES: {s!r} is not one of insert-deny, narrow, shift")
    endpoint = url("REVERT_QUEUE__queueServiceUri")
    if settings.local and endpoint and urlparse(endpoint).hostname not in ("127.0.0.1", "localhost", "::1"):
        problems.append(f"NSG_GUARD_AUTH=local only talks to loopback stand-ins; REVERT_QUEUE is {endpoint}")
    return replace(settings, revert_queue_endpoint=endpoint, revert_strategies=strategies,
                   revert_lock_container=get("REVERT_LOCK_CONTAINER") or "nsg-guard-locks",
                   jit_principals=frozenset(x.lower() for x in csv("JIT_PRINCIPAL_IDS")),
                   revert_max_nsgs_per_run=max_nsgs_per_run(get("REVERT_MAX_NSGS_PER_RUN"), problems),
                   revert_max_nsgs_per_window=max_nsgs_per_run(get("REVERT_MAX_NSGS_PER_WINDOW"), problems,
                                                               "REVERT_MAX_NSGS_PER_WINDOW", 100),
                   revert_window_seconds=_window_seconds(get("REVERT_WINDOW_SECONDS"), problems))


MAX_NSGS_PER_RUN_LIMIT = 10000


def max_nsgs_per_run(text: str, problems: list[str], name: str = "REVERT_MAX_NSGS_PER_RUN",
                     default: int | None = None) -> int:
    """An NSG cap (docs/revert.md, "Blast radius"): a whole number from 1 to 10000 (default 25 per run, 100
    per window). Zero is refused: holding every NSG for ever is ``REVERT_MODE=dry-run``, said plainly."""
    from shared.core.blastradius import DEFAULT_MAX_NSGS_PER_RUN

    default = DEFAULT_MAX_NSGS_PER_RUN if default is None else default
    text = text.strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_NSGS_PER_RUN_LIMIT:
        per = "run" if name.endswith("_RUN") or name.startswith("--") else "window"
        problems.append(f"{name}={text[:40]!r}: expected a whole number of NSGs per {per} from 1 to "
                        f"{MAX_NSGS_PER_RUN_LIMIT} (default {default}; to write nothing use REVERT_MODE=dry-run)")
        return default
    return int(text)


def _window_seconds(text: str, problems: list[str]) -> int:
    """``REVERT_WINDOW_SECONDS``: the rolling window of ``REVERT_MAX_NSGS_PER_WINDOW``, 1 s to 7 days (a held
    job waits in the queue, whose messages stay invisible for at most 7 days)."""
    text = text.strip()
    if not text:
        return 3600
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 7 * 86400 - 60:
        problems.append(f"REVERT_WINDOW_SECONDS={text[:40]!r}: expected seconds from 1 to {7 * 86400 - 60} "
                        "(default 3600)")
        return 3600
    return int(text)
def _cloud_settings(get: Any, url: Any, integer: Any, problems: list[str]) -> dict[str, Any]:
    """Token audiences (``ARM_AUDIENCE``, ``LOGS_INGESTION_AUDIENCE``; defaults from ``ARM_ENDPOINT`` for the
    public, China and US Government clouds, else required) and ``AUTHZ_RETRY_SECONDS`` (how long a 403 on a
    read is retried while a new role assignment propagates)."""
    endpoint = get("ARM_ENDPOINT") or DEFAULT_ARM_ENDPOINT
    known = CLOUD_AUDIENCES.get(urlparse(endpoint).hostname or "")
    local = (urlparse(endpoint).hostname or "") in ("127.0.0.1", "localhost", "::1")
    fallback = known or (CLOUD_AUDIENCES["management.azure.com"] if local else None)
    arm = url("ARM_AUDIENCE") or (fallback[0] if fallback else None)
    logs = url("LOGS_INGESTION_AUDIENCE") or (fallback[1] if fallback else None)
    if arm is None or logs is None:
        problems.append(f"ARM_ENDPOINT={endpoint!r} is not a known cloud: set ARM_AUDIENCE and "
                        "LOGS_INGESTION_AUDIENCE (the token audiences of that cloud)")
    return {"arm_audience": arm or DEFAULT_ARM_ENDPOINT, "logs_audience": logs or "https://monitor.azure.com",
            "authz_retry_s": integer("AUTHZ_RETRY_SECONDS", 20, 0, 300)}
