"""Seeding the stand-ins from a file: every NSG shape ``nsg-guard scan`` accepts, plus the bundle
``{"nsgs": [...], "nics": [...], "publicIps": [...]}``.

A seed is checked exactly like a scan input (same reader, same completeness checks, same parser), so
``localazure --seed`` and ``sweep --local`` never seed 0 NSGs silently from a shape they misread, and a bad
file is one :class:`InputError` naming it, not a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.app.files import (
    DocumentChecker,
    NsgDocument,
    load_json_file,
    load_nsg_document,
    paging_markers,
    source_name,
)
from shared.core.errors import InputError
from shared.core.model import Nsg, parse_nsg

BUNDLE_KEYS = ("nsgs", "nics", "publicIps")


@dataclass(frozen=True)
class SeedCounts:
    nsgs: int = 0
    nics: int = 0
    public_ips: int = 0

    @property
    def total(self) -> int:
        return self.nsgs + self.nics + self.public_ips


def arm_body(item: Mapping[str, Any], nsg: Nsg) -> dict[str, Any]:
    """An ARM body for the stand-in: ARM/Resource Graph shapes as they are, the az CLI shape rebuilt."""
    if isinstance(item.get("properties"), Mapping):
        return dict(item)
    props: dict[str, Any] = {"securityRules": [r.to_arm() for r in nsg.rules]}
    if nsg.subnet_ids:
        props["subnets"] = [{"id": s} for s in nsg.subnet_ids]
    if nsg.nic_ids:
        props["networkInterfaces"] = [{"id": n} for n in nsg.nic_ids]
    body: dict[str, Any] = {"id": nsg.id, "name": nsg.name, "properties": props, "tags": dict(nsg.tags)}
    if nsg.location:
        body["location"] = nsg.location
    return body


def read_seed(path: str | Path) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """NSG bodies (ARM shape), NIC rows and public IP rows from a seed file; InputError for anything else."""
    source = source_name(path)
    data = load_json_file(path)
    if isinstance(data, Mapping) and "id" not in data and any(k in data for k in BUNDLE_KEYS):
        unknown = sorted(set(map(str, data)) - set(BUNDLE_KEYS))
        if unknown:
            raise InputError(f"unknown seed field(s) {', '.join(unknown)}; a seed bundle has "
                             f"{', '.join(BUNDLE_KEYS)}", source=source)
        for key in BUNDLE_KEYS:
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                raise InputError(f"field {key!r} must be a list of objects", source=source)
        doc = NsgDocument(source, "", list(data.get("nsgs", [])), paging_markers(data), data)
        nics, ips = list(data.get("nics", [])), list(data.get("publicIps", []))
        _check_context_rows(nics, ips, source)
    else:
        doc, nics, ips = load_nsg_document(path), [], []
    errors, skip = DocumentChecker().check(doc)
    bodies = []
    for index, item in enumerate(doc.items):
        try:
            nsg = parse_nsg(item)
        except InputError as exc:
            errors.append(exc.located(source=source, nsg=f"#{index + 1}"))
            continue
        if index not in skip:
            bodies.append(arm_body(item, nsg))
    if errors:
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InputError(f"{errors[0].reason}{more}", source=errors[0].source or source, nsg=errors[0].nsg,
                         rule=errors[0].rule, field=errors[0].field)
    return bodies, nics, ips


def _check_context_rows(nics: list[Any], ips: list[Any], source: str) -> None:
    """NIC rows parse like the sweep parses them; public IP rows need an ARM id."""
    from shared.core.inventory import parse_public_nic

    for n, row in enumerate(nics, 1):
        try:
            parse_public_nic(row)
        except InputError as exc:
            raise InputError(f"nics #{n}: {exc}", source=source) from None
    for n, row in enumerate(ips, 1):
        if not isinstance(row.get("id"), str) or not row["id"].startswith("/subscriptions/"):
            raise InputError(f"publicIps #{n}: needs an ARM 'id'", source=source)


def seed_file(azure: Any, path: str | Path) -> SeedCounts:
    """Seed a :class:`localazure.server.LocalAzure` from ``path`` (checked first: nothing is half-seeded)."""
    bodies, nics, ips = read_seed(path)
    for body in bodies:
        azure.seed_nsg(body)
    for row in nics:
        azure.graph.seed("nic", row)
    for row in ips:
        azure.graph.seed("publicip", row)
    return SeedCounts(len(bodies), len(nics), len(ips))
