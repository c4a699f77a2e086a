"""Read a JSON file whose top level is a list, one element at a time (issue 15: flat memory on big inputs).

``az network nsg list`` and Resource Graph exports are one big JSON list. Loading it whole keeps the text,
every parsed dict and every evaluation alive at once (417 MB peak RSS for a 128 MB input). This reader decodes
the list element by element from 1 MB chunks with the standard library's decoder, so only one NSG's dicts
are alive at a time. Anything that is not a well-formed list is left to the whole-file reader (which also
words the error message): :func:`iter_list_items` raises :class:`NotStreamable` before yielding anything for
a document that is not a list, and :class:`StreamError` when the list turns out malformed part-way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.core.errors import InputError

if TYPE_CHECKING:
    from shared.app.files import NsgDocument

CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"
_AFTER_ELEMENT = frozenset(_WHITESPACE + ",]")


class NotStreamable(Exception):
    """The document is not a top-level JSON list: read it whole."""


class StreamError(Exception):
    """The list is malformed somewhere: read it whole to report where."""


def iter_list_items(path: str | Path, chunk: int = CHUNK) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8-sig") as f:  # az on Windows writes a BOM
        buf = f.read(chunk)
        pos = _skip(buf, 0)
        if pos >= len(buf) or buf[pos] != "[":
            raise NotStreamable
        pos += 1
        eof = False
        first = True
        while True:
            pos = _skip(buf, pos)
            while pos >= len(buf) and not eof:
                buf, pos, eof = _more(f, buf, pos, chunk)
                pos = _skip(buf, pos)
            if pos >= len(buf):
                raise StreamError("unterminated list")
            if buf[pos] == "]":
                if _skip(buf, pos + 1) < len(buf) or (not eof and f.read(1).strip()):
                    raise StreamError("data after the list")
                return
            if not first:
                if buf[pos] != ",":
                    raise StreamError("expected ','")
                pos = _skip(buf, pos + 1)
            while True:
                pos = _skip(buf, pos)  # raw_decode does not skip leading whitespace
                try:
                    item, end = decoder.raw_decode(buf, pos)
                except RecursionError:
                    raise StreamError("nested too deeply") from None
                except json.JSONDecodeError:
                    if eof:
                        raise StreamError("invalid element") from None
                    buf, pos, eof = _more(f, buf, pos, chunk)
                    continue
                if end >= len(buf) or buf[end] not in _AFTER_ELEMENT:
                    # The element may go on in the next chunk ("0." of "0.5"): decode it again with more text.
                    if eof:
                        if end >= len(buf):
                            raise StreamError("unterminated list")
                        raise StreamError("invalid element")
                    buf, pos, eof = _more(f, buf, pos, chunk)
                    continue
                break
            first = False
            pos = end
            yield item


def _skip(buf: str, pos: int) -> int:
    n = len(buf)
    while pos < n and buf[pos] in _WHITESPACE:
        pos += 1
    return pos


def _more(f: Any, buf: str, pos: int, chunk: int) -> tuple[str, int, bool]:
    """Drop what was consumed, append the next chunk; (buffer, position, end of file)."""
    more = f.read(chunk)
    return buf[pos:] + more, 0, not more


def open_nsg_items(path: str | Path) -> tuple[Iterator[Any], NsgDocument | None]:
    """The NSG objects of one input file: streamed when the file is a UTF-8 JSON list (document None), else
    read whole by :func:`shared.app.files.load_nsg_document` (every other shape and encoding, stdin, and every
    error worded with file, line and column), which is returned too (paging markers, text for locations).

    A list that turns out malformed after some NSGs were yielded raises the whole-file reader's InputError.
    """
    from shared.app.files import STDIN, load_nsg_document

    if str(path) == STDIN:
        doc = load_nsg_document(path)
        return iter(doc.items), doc
    stream = iter_list_items(path)
    try:
        first = next(stream)
    except StopIteration:
        return iter(()), None
    except (NotStreamable, StreamError, OSError, UnicodeDecodeError, RecursionError):
        doc = load_nsg_document(path)
        return iter(doc.items), doc
    return _rest(first, stream, path), None


def _rest(first: Any, stream: Iterator[Any], path: str | Path) -> Iterator[Any]:
    from shared.app.files import load_nsg_document, source_name

    yield first
    try:
        yield from stream
    except (StreamError, OSError, UnicodeDecodeError, RecursionError):
        load_nsg_document(path)  # raises InputError naming the file and what is wrong
        raise InputError("not valid JSON: the list could not be read element by element",
                         source=source_name(path)) from None
