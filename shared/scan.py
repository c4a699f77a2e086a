"""Offline scanning of NSG JSON files: the CLI's use case, built on the same engine as the Function."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from shared.errors import InputError
from shared.exemptions import DEFAULT_EXEMPT_TAG, ExemptionContext, apply_exemptions
from shared.jsonstream import nsg_items
from shared.model import parse_nsg
from shared.output import ScannedNsg
from shared.policy import Engine


def scan_files(paths: Iterable[str], engine: Engine, errors: list[InputError], *,
               exempt_tag: str = DEFAULT_EXEMPT_TAG, now: datetime | None = None,
               exemptions: ExemptionContext | None = None) -> Iterator[ScannedNsg]:
    """Evaluate every NSG in every file. Bad NSGs are appended to ``errors`` (with file, NSG, rule)
    while the rest of the input is still checked, so one run reports every problem at once."""
    for path in paths:
        try:
            items = nsg_items(path)  # a list is read NSG by NSG (shared/jsonstream.py)
        except InputError as exc:
            errors.append(exc.located(source=path))
            continue
        for index, item in enumerate(items):
            try:
                nsg = parse_nsg(item, engine.policy.extra_service_tags)
            except InputError as exc:
                located = exc.located(source=path)
                if located.nsg in (None, "<unnamed>"):
                    located = InputError(located.reason, source=path, nsg=f"#{index + 1}",
                                         rule=located.rule, field=located.field)
                errors.append(located)
                continue
            yield ScannedNsg(path, apply_exemptions(engine.evaluate(nsg), exempt_tag, now or datetime.now(UTC),
                                                    exemptions))
