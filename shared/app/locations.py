"""Where each NSG and rule sits in a JSON file (for SARIF regions): one linear pass per file.

The file is tokenised once (strings and brackets only); each NSG object's span is found, and inside it the
first ``"name": "..."`` of every rule (deeper than the NSG's own ``name``). Offsets become lines by
bisecting the newline offsets. So a result points inside the right NSG even when rule names repeat across
NSGs, and 1,000 NSGs cost one pass, not one pass per finding.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # strings and brackets: all that nesting needs


def item_spans(text: str, key: str | None) -> list[tuple[int, int]]:
    """Start/end offsets of the elements of the array holding a document's items, in one pass.

    ``key`` None: the top-level array; otherwise the array under that key of the top-level object.
    Elements that are not objects or arrays are not listed (they are errors anyway).
    """
    spans: list[tuple[int, int]] = []
    depth = 0
    target = 1 if key is None else -1  # depth of the items array's contents, once known
    pending_key = False
    start = 0
    needle = json.dumps(key) if key is not None else None
    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == '"':
            if pending_key:  # the key's value was a string: not the items array
                pending_key = False
                continue
            if needle is not None and target < 0 and depth == 1 and tok == needle:
                rest = text[m.end():m.end() + 64].lstrip()
                pending_key = rest.startswith(":")
            continue
        if c in "[{":
            if pending_key and c == "[":
                target = depth + 1
            elif depth == target:
                start = m.start()
            pending_key = False
            depth += 1
        else:
            depth -= 1
            if depth == target:
                spans.append((start, m.end()))
            elif target > 0 and depth == target - 1:
                break  # the items array closed
    return spans


_NAME = '"name"'


@dataclass(frozen=True, slots=True)
class NsgLocation:
    line: int
    rule_lines: Mapping[str, int] = field(default_factory=dict)  # lower-cased rule name -> line


class LineIndex:
    def __init__(self, text: str) -> None:
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1


def _spans(text: str, data: Any, count: int) -> list[tuple[int, int]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        return item_spans(text, None)
    if isinstance(data, Mapping):
        for key in ("value", "data"):
            if key in data and "id" not in data:
                return item_spans(text, key)
    start = len(text) - len(stripped)
    return [(start, len(text))] if count == 1 else []


def locate(text: str, data: Any, count: int) -> list[NsgLocation | None]:
    """One location per NSG item (``count`` of them), or None where the text could not be matched."""
    spans = _spans(text, data, count)
    if len(spans) != count:
        return [None] * count
    lines = LineIndex(text)
    out: list[NsgLocation | None] = []
    for start, end in spans:
        rules: dict[str, int] = {}
        depth = 0
        expect_value = False
        for m in _TOKEN.finditer(text, start, end):
            tok = m.group()
            c = tok[0]
            if c == '"':
                if expect_value:
                    expect_value = False
                    try:
                        name = json.loads(tok)
                    except ValueError:
                        continue
                    rules.setdefault(name.lower(), lines.line(m.start()))
                elif tok == _NAME and depth >= 3 and text[m.end():m.end() + 16].lstrip().startswith(":"):
                    expect_value = True
                continue
            expect_value = False
            depth += 1 if c in "[{" else -1
        out.append(NsgLocation(lines.line(start), rules))
    return out
