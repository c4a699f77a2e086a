"""Reading files people hand to the CLI: NSG JSON and exported table rows, with errors that name the file.

Everything here treats the file as hostile: binary data, gzip, Latin-1, UTF-16 (Windows PowerShell's
``az ... > f.json`` writes UTF-16 with a BOM: decoded, not rejected), JSON nested deeper than the parser can
follow, and *incomplete* NSG documents (a projection without rules, one page of a paged result, the same NSG
twice) all become one :class:`InputError` naming the file, never a traceback and never a silent "compliant".
"""

from __future__ import annotations

import bisect
import codecs
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.app.locations import item_spans
from shared.core.errors import InputError

if TYPE_CHECKING:
    from shared.core.model import Nsg

STDIN = "-"
_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def source_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == STDIN else str(path)


def read_bytes(path: str | Path) -> bytes:
    """The raw bytes of ``path``; ``-`` reads standard input."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None


def decode_text(data: bytes, source: str) -> str:
    """Bytes -> text: UTF-8 (BOM or not), or UTF-16/32 with a BOM; anything else is a one-line error."""
    if data[:2] == b"\x1f\x8b":
        raise InputError("gzip-compressed data: decompress it first (gunzip -c FILE | nsg-guard scan -)",
                         source=source)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid {encoding.upper()} text after its byte order mark "
                                 f"(byte offset {exc.start + len(bom)})", source=source) from None
    if b"\x00" in data[:8192]:
        raise InputError("binary data (NUL bytes), not JSON text; UTF-16 needs a byte order mark",
                         source=source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}; Latin-1 or "
                         "another legacy encoding?): save the file as UTF-8", source=source) from None


def read_text(path: str | Path) -> str:
    return decode_text(read_bytes(path), source_name(path))


def parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         source=source) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", source=source) from None


def load_json_file(path: str | Path) -> Any:
    return parse_json(read_text(path), source_name(path))


# --- NSG documents ---------------------------------------------------------------------------------

_ITEM_KEYS = ("value", "data")


@dataclass
class NsgDocument:
    """One file of NSGs: the raw items in order, the text (for SARIF locations) and paging markers."""

    source: str
    text: str
    items: list[Any]
    partial: list[str] = field(default_factory=list)  # why the file is only part of a larger result
    data: Any = None  # the parsed document (its shape tells where the items are)


def _items(data: Any, source: str) -> list[Any]:
    """The NSG objects of any shape ``scan`` reads: one NSG, a list, ``{"value": [...]}`` (ARM page),
    ``{"data": [...]}`` (Resource Graph REST / ``az graph query``)."""
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for key in _ITEM_KEYS:
            if key in data and "id" not in data:
                items = data[key]
                if not isinstance(items, list):
                    raise InputError(f"field {key!r} must be a list of NSGs", source=source)
                return items
        if "id" not in data and "name" not in data:
            keys = ", ".join(sorted(map(str, data))[:5]) or "none"
            raise InputError(f"no NSGs here: expected an NSG, a list of NSGs, or an object with 'value' or "
                             f"'data' (keys found: {keys})", source=source)
        return [data]
    raise InputError(f"expected an NSG, a list of NSGs or a page of NSGs, got {type(data).__name__}",
                     source=source)


def paging_markers(data: Any) -> list[str]:
    """Signs that a document is one page of a larger result (ARM ``nextLink``, Resource Graph
    ``$skipToken``/``resultTruncated``, ``az graph query``'s ``skip_token``)."""
    if not isinstance(data, Mapping):
        return []
    found = []
    for key in ("nextLink", "@odata.nextLink"):
        if data.get(key):
            found.append(f"'{key}' is set (ARM paging: later pages are missing)")
    for key in ("$skipToken", "skipToken", "skip_token"):
        if data.get(key):
            found.append(f"'{key}' is set (Resource Graph paging: later pages are missing)")
    if str(data.get("resultTruncated", "")).lower() == "true":
        found.append("'resultTruncated' is true (Resource Graph truncated the result)")
    total = data.get("totalRecords", data.get("total_records"))
    rows = data.get("data")
    if isinstance(total, int) and isinstance(rows, list) and total > len(rows) and not found:
        found.append(f"'totalRecords' is {total} but the file holds {len(rows)} rows")
    return found


def incomplete_reason(item: Any) -> str | None:
    """Why an NSG object cannot be judged from what the file holds (its rules are not in it), or None."""
    if type(item) is not dict and not isinstance(item, Mapping):  # exact type first: one per NSG of a scan
        return None  # parse_nsg names the type
    props = item.get("properties")
    if props is None and "properties" not in item:
        if "securityRules" in item and item["securityRules"] is not None:
            return None  # az CLI shape: the properties are flattened
        if "securityRules" in item:
            return "'securityRules' is null: the rules are not in the file"
        return ("no 'properties' and no 'securityRules': the rules are not in the file (an "
                "'az ... --query' projection?); export whole NSGs, e.g. 'az network nsg list'")
    if (type(props) is dict or isinstance(props, Mapping)) and props.get("securityRules") is None:
        what = "null" if "securityRules" in props else "missing"
        return f"'properties.securityRules' is {what}: the rules are not in the file"
    return None


def load_nsg_document(path: str | Path) -> NsgDocument:
    source = source_name(path)
    text = read_text(path)
    data = parse_json(text, source)
    return NsgDocument(source, text, _items(data, source), paging_markers(data), data)


def nsg_key(item: Any) -> str | None:
    nsg_id = item.get("id") if type(item) is dict or isinstance(item, Mapping) else None
    return nsg_id.lower() if isinstance(nsg_id, str) else None


class DocumentChecker:
    """Every reason a run's NSG documents are not the whole truth, one error each (file and NSG named):
    rules missing from an NSG, the same NSG id twice (across all files of the run), paging markers.

    Paging markers are errors unless ``allow_partial`` (then they become ``warnings``)."""

    def __init__(self, *, allow_partial: bool = False) -> None:
        self.allow_partial = allow_partial
        self.warnings: list[str] = []
        self.seen: dict[str, tuple[str, int]] = {}

    def check(self, doc: NsgDocument) -> tuple[list[InputError], set[int]]:
        """Errors for ``doc`` and the indexes (0-based) of items not to evaluate."""
        errors = self.check_partial(doc)
        skip: set[int] = set()
        for index, item in enumerate(doc.items):
            problems = self.check_item(doc.source, index, item)
            if problems:
                errors.extend(problems)
                skip.add(index)
        return errors, skip

    def check_partial(self, doc: NsgDocument) -> list[InputError]:
        """Paging markers of a whole document (a streamed list has none)."""
        errors: list[InputError] = []
        for reason in doc.partial:
            if self.allow_partial:
                self.warnings.append(f"file {doc.source}: partial result: {reason}; scanned anyway "
                                     "(--allow-partial): NSGs on the missing pages are NOT checked")
            else:
                errors.append(InputError(f"partial result: {reason}; fetch every page (nsg-guard scan "
                                         "--allow-partial scans this part anyway)", source=doc.source))
        return errors

    def check_item(self, source: str, index: int, item: Any) -> list[InputError]:
        """Why item ``index`` (0-based) of ``source`` is not to be evaluated (empty: it is)."""
        label = _label(item, index + 1)
        reason = incomplete_reason(item)
        problems = [InputError(reason, source=source, nsg=label)] if reason else []
        key = nsg_key(item)
        if key is None:
            return problems
        return self._check_key(source, index, key, label, problems)

    def check_parsed(self, source: str, index: int, nsg: Nsg) -> list[InputError]:
        """:meth:`check_item` for an NSG the typed reader already parsed (shared/app/typednsg.py): its rules
        are in the file (it has a ``securityRules`` list), so only a repeated id is left to find."""
        if nsg.id.lower() not in self.seen:  # the common case: nothing to report
            self.seen[nsg.id.lower()] = (source, index + 1)
            return []
        return self._check_key(source, index, nsg.id.lower(), nsg.name or f"#{index + 1}", [])

    def _check_key(self, source: str, index: int, key: str, label: str,
                   problems: list[InputError]) -> list[InputError]:
        if key in self.seen:
            where, n = self.seen[key]
            problems.append(InputError(f"the same NSG id appears twice (also in {where}, NSG #{n}): scan "
                                       "each version separately", source=source, nsg=label))
        else:
            self.seen[key] = (source, index + 1)
        return problems


def _label(item: Any, index: int) -> str:
    name = item.get("name") if type(item) is dict or isinstance(item, Mapping) else None
    return name if isinstance(name, str) and name else f"#{index}"


# --- exported table rows ---------------------------------------------------------------------------

def load_rows(path: str | Path, *, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Table rows from JSON Lines (the stand-ins' ``<stream>.jsonl``), a JSON array, ``{"value": [...]}`` /
    ``{"rows": [...]}``, or a Log Analytics query result (``{"tables": [{"columns", "rows"}]}``).

    Every record must be an object: nothing is skipped. Columns the table declares ``dynamic`` arrive as
    JSON strings from Log Analytics exports and are decoded. Every row must carry a ``RecordType`` (an
    NSG Guard table row, not an NSG or some other export) and the file must hold at least one; with
    ``kinds``, at least one row must be of those kinds. Errors name the file and line.
    """
    source = source_name(path)
    text = read_text(path)
    try:
        data: Any = json.loads(text)
        lines = _item_lines(text, data)
    except json.JSONDecodeError:
        data, lines = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            data.append(parse_json_line(line, number, source))
            lines.append(number)
    except RecursionError:
        raise InputError("JSON nested too deeply to read", source=source) from None
    if isinstance(data, Mapping):
        if isinstance(data.get("tables"), list):
            data, lines = _from_tables(data["tables"], source), []
        else:
            key = next((k for k in ("value", "rows") if isinstance(data.get(k), list)), None)
            data = data[key] if key else [data]
    if not isinstance(data, list):
        raise InputError("expected table rows (a JSON array or JSON lines)", source=source)
    types = _column_types()
    rows = []
    for n, record in enumerate(data):
        line = lines[n] if n < len(lines) else None
        if not isinstance(record, Mapping):
            raise InputError(f"every row must be a JSON object{_at(line)}", source=source)
        rows.append(decode_row(record, types, source, line))
    _check_kinds(rows, lines, tuple(kinds) if kinds is not None else None, source)
    return rows


def parse_json_line(line: str, number: int, source: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {number} is not JSON: {exc.msg}", source=source) from None
    except RecursionError:
        raise InputError(f"line {number}: JSON nested too deeply to read", source=source) from None


def _at(line: int | None) -> str:
    return f" (line {line})" if line else ""


def _column_types() -> dict[str, str]:
    from shared.schema import findings_schema

    return dict(findings_schema().columns)


def decode_row(record: Mapping[str, Any], types: Mapping[str, str], source: str,
               line: int | None) -> dict[str, Any]:
    """Undo what exports do to typed columns: dynamic values as JSON strings, ints/bools as strings."""
    row = dict(record)
    for name, value in record.items():
        kind = types.get(name)
        if not isinstance(value, str) or kind is None:
            continue
        if kind == "dynamic":
            if value == "":
                row[name] = None
                continue
            try:
                row[name] = json.loads(value)
            except (json.JSONDecodeError, RecursionError):
                raise InputError(f"column {name} is dynamic but holds {value[:40]!r}, not JSON{_at(line)}",
                                 source=source) from None
        elif kind == "int" and re.fullmatch(r"-?\d+", value):
            row[name] = int(value)
        elif kind == "boolean" and value.lower() in ("true", "false"):
            row[name] = value.lower() == "true"
    return row


def _from_tables(tables: list[Any], source: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for table in tables:
        if not isinstance(table, Mapping) or not isinstance(table.get("columns"), list) \
                or not isinstance(table.get("rows"), list):
            raise InputError("'tables' entries need 'columns' and 'rows' (Log Analytics query result)",
                             source=source)
        names = [c.get("name") if isinstance(c, Mapping) else None for c in table["columns"]]
        for values in table["rows"]:
            if not isinstance(values, list) or len(values) != len(names):
                raise InputError("a 'tables' row does not match its columns", source=source)
            rows.append({str(k): v for k, v in zip(names, values, strict=True)})
    return rows


#: other tables of the same Log Analytics workspace that ``report`` reads beside NSG Guard's rows (their
#: ``Type`` column names the table): sshd failures and Defender brute-force alerts (docs/aml.md, KPIs 3 and 4)
WORKSPACE_TABLES = ("Syslog", "SecurityAlert")


def _check_kinds(rows: list[dict[str, Any]], lines: list[int], kinds: tuple[str, ...] | None,
                 source: str) -> None:
    wanted = ("kind " + " or ".join(repr(k) for k in kinds)) if kinds else "NSG Guard's table"
    if not rows:
        raise InputError(f"no table rows in the file (expected rows of {wanted})", source=source)
    for n, row in enumerate(rows):
        if not isinstance(row.get("RecordType"), str) and row.get("Type") not in WORKSPACE_TABLES:
            line = lines[n] if n < len(lines) else None
            where = f"line {line}" if line else f"row {n + 1}"
            raise InputError(f"{where} is not an NSG Guard table row (no RecordType); expected rows of "
                             f"{wanted}", source=source)
    if kinds and not any(r.get("RecordType") in kinds for r in rows):
        found = sorted({str(r.get("RecordType") or r.get("Type")) for r in rows})
        raise InputError(f"no rows of {wanted} in the file (found: {', '.join(found) or 'no rows'})",
                         source=source)


def _item_lines(text: str, data: Any) -> list[int]:
    """Line of each top-level record in a JSON array (or under value/rows): for error messages."""
    if isinstance(data, list):
        spans = item_spans(text, None)
    elif isinstance(data, Mapping) and any(isinstance(data.get(k), list) for k in ("value", "rows")):
        spans = item_spans(text, "value" if isinstance(data.get("value"), list) else "rows")
    else:
        return []
    newlines = [m.start() for m in re.finditer("\n", text)]
    return [bisect.bisect_left(newlines, start) + 1 for start, _ in spans]


def report_file(path: str | Path) -> str:
    """Everything the demo needs in one call: read a JSONL export and render the KPI report."""
    from shared.core.kpis import compute_kpis, render_report

    return render_report(compute_kpis(load_rows(path)))
