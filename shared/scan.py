"""Offline scanning of NSG JSON files: the CLI's use case, built on the same engine as the Function."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from shared.attachment import attachment_of
from shared.errors import InputError
from shared.exemptions import DEFAULT_EXEMPT_TAG, apply_exemptions
from shared.files import DocumentChecker, load_nsg_document
from shared.locations import locate
from shared.model import parse_nsg
from shared.output import ScannedNsg
from shared.policy import Engine


def scan_files(paths: Iterable[str], engine: Engine, errors: list[InputError], *,
               exempt_tag: str = DEFAULT_EXEMPT_TAG, now: datetime | None = None,
               allow_partial: bool = False, warnings: list[str] | None = None, locations: bool = False,
               progress: Callable[[int, str], None] | None = None) -> Iterator[ScannedNsg]:
    """Evaluate every NSG in every file (``-`` = stdin). Bad or incomplete NSGs are appended to ``errors``
    (with file, NSG, rule) while the rest of the input is still checked, so one run reports every problem at
    once. Paging markers are errors unless ``allow_partial`` (then they go to ``warnings``).
    ``locations``: find each NSG's and rule's line in its file (for SARIF)."""
    checker = DocumentChecker(allow_partial=allow_partial)
    when = now or datetime.now(UTC)
    for path in paths:
        try:
            doc = load_nsg_document(path)
        except InputError as exc:
            errors.append(exc.located(source=doc_source(path)))
            continue
        problems, skip = checker.check(doc)
        errors.extend(problems)
        where = locate(doc.text, doc.data, len(doc.items)) if locations else [None] * len(doc.items)
        for index, item in enumerate(doc.items):
            try:
                nsg = parse_nsg(item, engine.policy.extra_service_tags)
            except InputError as exc:
                located = exc.located(source=doc.source)
                if located.nsg in (None, "<unnamed>"):
                    located = InputError(located.reason, source=doc.source, nsg=f"#{index + 1}",
                                         rule=located.rule, field=located.field)
                errors.append(located)
                continue
            if index in skip:  # incomplete or a duplicate: already an error, never a verdict
                continue
            evaluation = apply_exemptions(engine.evaluate(nsg), exempt_tag, when)
            loc = where[index]
            yield ScannedNsg(doc.source, evaluation, attachment=attachment_of(nsg),
                             line=loc.line if loc else None, rule_lines=loc.rule_lines if loc else {})
            if progress:
                progress(1, doc.source)
    if warnings is not None:
        warnings.extend(checker.warnings)


def doc_source(path: str) -> str:
    from shared.files import source_name

    return source_name(path)
