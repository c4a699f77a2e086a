"""Offline scanning of NSG JSON files: the CLI's use case, built on the same engine as the Function."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from shared.app.files import DocumentChecker, load_nsg_document, source_name
from shared.app.jsonstream import open_nsg_items
from shared.app.locations import locate
from shared.app.output import ScannedNsg
from shared.app.typednsg import typed_parser
from shared.core.attachment import attachment_of
from shared.core.errors import InputError
from shared.core.exemptions import DEFAULT_EXEMPT_TAG, ExemptionContext, apply_exemptions
from shared.core.model import Nsg, parse_nsg
from shared.core.policy import Engine


def scan_files(paths: Iterable[str], engine: Engine, errors: list[InputError], *,
               exempt_tag: str = DEFAULT_EXEMPT_TAG, now: datetime | None = None,
               exemptions: ExemptionContext | None = None,
               allow_partial: bool = False, warnings: list[str] | None = None, locations: bool = False,
               progress: Callable[[int, str], None] | None = None) -> Iterator[ScannedNsg]:
    """Evaluate every NSG in every file (``-`` = stdin). Bad or incomplete NSGs are appended to ``errors``
    (with file, NSG, rule) while the rest of the input is still checked, so one run reports every problem at
    once. Paging markers are errors unless ``allow_partial`` (then they go to ``warnings``).
    ``locations``: find each NSG's and rule's line in its file (for SARIF; the file is then read whole,
    otherwise a list file is read NSG by NSG: flat memory on big inputs)."""
    checker = DocumentChecker(allow_partial=allow_partial)
    when = now or datetime.now(UTC)
    extra_tags = engine.policy.extra_service_tags
    typed = typed_parser(extra_tags)  # list elements of the common shape straight to an Nsg (issue 15)
    for path in paths:
        source = source_name(path)
        try:
            if locations:
                doc = load_nsg_document(path)
                items: Iterator[Any] = iter(doc.items)
            else:
                items, doc = open_nsg_items(path, typed)
        except InputError as exc:
            errors.append(exc.located(source=source))
            continue
        where = None
        if doc is not None:
            errors.extend(checker.check_partial(doc))
            if locations:
                where = locate(doc.text, doc.data, len(doc.items))
        index = -1
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except InputError as exc:  # a list malformed after its first NSGs
                errors.append(exc.located(source=source))
                break
            index += 1
            if type(item) is Nsg:  # parsed by the typed reader: exactly parse_nsg's Nsg for this element
                nsg = item
                problems = checker.check_parsed(source, index, nsg)
                errors.extend(problems)
            else:
                problems = checker.check_item(source, index, item)
                errors.extend(problems)
                try:
                    nsg = parse_nsg(item, extra_tags)
                except InputError as exc:
                    located = exc.located(source=source)
                    if located.nsg in (None, "<unnamed>"):
                        located = InputError(located.reason, source=source, nsg=f"#{index + 1}",
                                             rule=located.rule, field=located.field)
                    errors.append(located)
                    continue
            if problems:  # incomplete or a duplicate: already an error, never a verdict
                continue
            evaluation = apply_exemptions(engine.evaluate(nsg), exempt_tag, when, exemptions)
            loc = where[index] if where is not None else None
            yield ScannedNsg(source, evaluation, attachment=attachment_of(nsg),
                             line=loc.line if loc else None, rule_lines=loc.rule_lines if loc else {})
            if progress:
                progress(1, source)
    if warnings is not None:
        warnings.extend(checker.warnings)
