"""Read a JSON file whose top level is a list, one element at a time (issue 15: flat memory on big inputs).

``az network nsg list`` and Resource Graph exports are one big JSON list. Loading it whole keeps the text,
every parsed dict and every evaluation alive at once (417 MB peak RSS for a 128 MB input). This reader decodes
the list element by element from 1 MB chunks (with msgspec, else the standard library's decoder), so only one
NSG's dicts are alive at a time. Anything that is not a well-formed list is left to the whole-file reader (which also
words the error message): :func:`iter_list_items` raises :class:`NotStreamable` before yielding anything for
a document that is not a list, and :class:`StreamError` when the list turns out malformed part-way. ARM pages
(``{"value": [...]}``) and Resource Graph responses (``{"data": [...]}``) stream the same way
(:func:`open_nsg_items`). With a typed reader (``shared/app/typednsg.py``) the elements of the common shape come
out as parsed NSGs, decoded in runs of several at once (bench/README.md, issue 15).
"""

from __future__ import annotations

import codecs
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.core.errors import InputError

if TYPE_CHECKING:
    from shared.app.files import NsgDocument

try:  # a pinned dependency; the fallback keeps a bare checkout working
    import msgspec
except ImportError:  # pragma: no cover - exercised only without the dependency
    msgspec = None  # type: ignore[assignment]

Typed = Callable[[memoryview], Any]
CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"
_AFTER_ELEMENT = frozenset(_WHITESPACE + ",]")


class NotStreamable(Exception):
    """The document is not a top-level JSON list: read it whole."""


class StreamError(Exception):
    """The list is malformed somewhere: read it whole to report where."""


def iter_list_items(path: str | Path, chunk: int = CHUNK, typed: Typed | None = None) -> Iterator[Any]:
    """The elements of the JSON list in ``path``, one at a time: through msgspec when it is installed (a pinned
    dependency, 2x faster), else the standard library's decoder. Both give exactly what ``json.load`` gives.

    ``typed``: a function from an element's JSON bytes to an object, or None (``shared/app/typednsg.py``): an
    element it takes is yielded as what it returned instead of the decoded element (msgspec reader only)."""
    if msgspec is not None:
        return _iter_list_items_msgspec(path, chunk, typed)
    return _iter_list_items_json(path, chunk)


def _iter_list_items_json(path: str | Path, chunk: int = CHUNK, start: int = 0,
                          inner: bool = False) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    with open(path, "rb") as raw:
        raw.seek(start)
        # az on Windows writes a BOM; a list inside a document (``inner``, at ``start``) ends at its "]"
        f = io.TextIOWrapper(raw, encoding="utf-8-sig" if start == 0 else "utf-8")
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
                if not inner and (_skip(buf, pos + 1) < len(buf) or (not eof and f.read(1).strip())):
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


# --- msgspec: element bounds from a C-level skip, elements decoded in C (issue 15, bench/README.md) ---------
#
# msgspec decodes one whole document; it has no "decode a prefix". Decoding the rest of the buffer as ``Raw``
# only skips over the first value (no objects built) and reports where it ended, in its error about the
# trailing characters (the 1-based byte of the first one): that is the element's end. The element's bytes are
# then decoded to Python objects. Whatever msgspec does not take (NaN, 1e400, invalid UTF-8, deep nesting, an
# error message of another form) goes through ``json`` for that element, so the items are json.load's.

_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_WS = re.compile(rb"[ \t\r\n]*")
_COMMA, _CLOSE, _OPEN = ord(","), ord("]"), ord("[")
_ITEM, _MORE, _JSON = "item", "more", "json"
# The typed function is given up on for the rest of a file after this many elements in a row it did not take
# (a file of another shape, e.g. az's flattened rules, would otherwise pay for two decodes of every NSG).
TYPED_MISSES = 16
# Runs of elements (below): elements read one by one after a run that failed, doubling after each failure.
RUN_PAUSE = 32
RUN_BYTES = 48 << 10  # a run's text at most: the structs of a longer run outgrow the CPU caches (slower)


def _iter_list_items_msgspec(path: str | Path, chunk: int = CHUNK, typed: Any = None, start: int = 0,
                             end_at: list[int] | None = None) -> Iterator[Any]:
    """Element by element, or a run of whole elements at once when the file repeats a separator.

    A run: the bytes around the boundary between two elements (as far as the first two elements end alike, the
    comma between them, as far as they start alike: ``[]}}]}}, {"name": "nsg-`` in a compact ARM list, the
    ``"type": "Microsoft.Network/networkSecurityGroups"`` line, the closing brace, comma and next opening brace
    in an indented ``az`` one) are learnt from the first elements, and the last place they occur in the next
    ``RUN_BYTES`` is taken as the end of an element. ``[`` + the text up to there + ``]`` is then decoded as one
    list, into typed structs when ``typed`` has ``many`` (one pass over the text instead of a skip and a decode
    per element), else into ``msgspec.Raw`` slices. That the list decodes proves the place right: a JSON object
    ends at its closing brace whatever follows, so each element is the one the file holds there, and a place
    inside an element or a string leaves a bracket or a quote open and fails. A run that fails is read
    element by element.

    ``start``: the file offset of a list inside a document (``{"value": [...]}``); the list then ends at its
    "]", whose end offset is appended to ``end_at`` (not when the json reader took over)."""
    skip_value = msgspec.json.Decoder(msgspec.Raw).decode
    raw_list = msgspec.json.Decoder(list[msgspec.Raw]).decode
    decode = msgspec.json.Decoder().decode
    many = getattr(typed, "many", None)
    build = getattr(typed, "build", None)
    ws = _WS.match
    count = 0
    misses = 0
    pattern: bytes | None = None  # the bytes around the boundary between two elements, once learnt
    tail = 0  # how many bytes of the pattern belong to the element before the boundary
    edges: tuple[bytes, bytes, bytes | None] | None = None  # the previous element's start, end and what follows
    pause, pause_next = 0, RUN_PAUSE
    inner = end_at is not None or start > 0
    with open(path, "rb") as f:
        f.seek(start)
        base = start  # the file offset of buf[0]
        buf = f.read(max(chunk, 3))
        eof = not buf
        if start == 0 and buf.startswith(codecs.BOM_UTF8):  # az on Windows writes a BOM
            buf = buf[3:]
            base = 3
        pos = ws(buf, 0).end()
        while pos >= len(buf) and not eof:
            base += pos
            buf, pos, eof = _more(f, buf, pos, chunk)
            pos = ws(buf, pos).end()
        if pos >= len(buf) or buf[pos] != _OPEN:
            raise NotStreamable
        pos += 1
        first = True
        while True:
            pos = ws(buf, pos).end()
            while pos >= len(buf) and not eof:
                base += pos
                buf, pos, eof = _more(f, buf, pos, chunk)
                pos = ws(buf, pos).end()
            if pos >= len(buf):
                raise StreamError("unterminated list")
            if buf[pos] == _CLOSE:
                if inner:
                    if end_at is not None:
                        end_at.append(base + pos + 1)
                    return
                rest = buf[pos + 1:]
                while not rest.strip() and not eof:
                    rest = f.read(chunk)
                    eof = not rest
                if rest.strip():
                    raise StreamError("data after the list")
                return
            if not first:
                if buf[pos] != _COMMA:
                    raise StreamError("expected ','")
                pos = ws(buf, pos + 1).end()
            if pattern is not None and pause <= 0:
                cut = buf.rfind(pattern, pos, pos + RUN_BYTES) + tail
                if cut > pos + tail:
                    run = b"[" + buf[pos:cut] + b"]"
                    docs = many(run) if many is not None else None
                    raws = None
                    if docs is None:
                        try:
                            raws = raw_list(run)
                        except (msgspec.DecodeError, RecursionError):
                            pause, pause_next = pause_next, 2 * pause_next  # element by element for a while
                    if docs is not None or raws is not None:
                        for i in range(len(docs) if docs is not None else len(raws)):  # type: ignore[arg-type]
                            item = None
                            if docs is not None:
                                item = build(docs[i])  # type: ignore[misc]
                                docs[i] = None  # one NSG's structs alive at a time, as element by element
                            elif typed is not None:
                                item = typed(raws[i])  # type: ignore[index]
                                if item is None:
                                    misses += 1
                                    if misses >= TYPED_MISSES:
                                        typed = many = None
                                else:
                                    misses = 0
                            if item is None:
                                if raws is None:
                                    raws = raw_list(run)
                                item = _decode_element(decode, raws[i])
                            count += 1
                            yield item
                        first = False
                        pos = cut
                        continue
            while True:
                pos = ws(buf, pos).end()
                with memoryview(buf) as view:
                    try:
                        skip_value(view[pos:])
                        step = _MORE  # one value and nothing after it: its end is not in the buffer yet
                    except msgspec.DecodeError as exc:
                        message = str(exc)
                        found = _TRAILING.search(message)
                        end = pos + int(found.group(1)) - 1 if found else pos
                        step = _ITEM if end > pos else _MORE if "truncated" in message else _JSON
                    except RecursionError:
                        step = _JSON
                    if step is _ITEM:
                        item = typed(view[pos:end]) if typed is not None else None
                        if item is None:
                            item = _decode_element(decode, view[pos:end])
                            if typed is not None:
                                misses += 1
                                if misses >= TYPED_MISSES:
                                    typed = many = None
                        else:
                            misses = 0
                if step is not _MORE:
                    break
                if eof:
                    raise StreamError("unterminated list")
                base += pos
                buf, pos, eof = _more(f, buf, pos, chunk)  # cut by the chunk: read on
            if step is _JSON:
                break  # not JSON to msgspec (NaN, Infinity...) or an error of another form: json takes over
            if pattern is None:
                now = _edges(buf, pos, end)
                if edges is not None and now is not None:
                    pattern, tail = _boundary(edges, now)
                edges = now
            pause -= 1
            first = False
            pos = end
            count += 1
            yield item
    # The rest of the list through the standard library's decoder (which says what is wrong, if anything).
    yield from itertools.islice(_iter_list_items_json(path, chunk, start, inner), count, None)


def _edges(buf: bytes, start: int, end: int) -> tuple[bytes, bytes, bytes | None] | None:
    """The first and last 64 bytes of the object element at ``start:end`` and the bytes from its end to the
    start of the next element (None when that is not in the buffer); None for an element that is no object."""
    if buf[start:start + 1] != b"{" or buf[end - 1:end] != b"}":
        return None
    after = _WS.match(buf, end).end()
    gap = None
    if buf[after:after + 1] == b",":
        nxt = _WS.match(buf, after + 1).end()
        if nxt < len(buf):
            gap = buf[end:nxt]
    return buf[start:start + 64], buf[max(start, end - 64):end], gap


def _boundary(first: tuple[bytes, bytes, bytes | None], second: tuple[bytes, bytes, bytes | None]
              ) -> tuple[bytes | None, int]:
    """What two consecutive elements share around their boundary: the end they have in common (at least the
    closing brace), the bytes between them, the start they have in common (at least ``{"``); and how many bytes
    of it are the end. (None, 0) when the first element's successor was not in view."""
    head1, tail1, gap = first
    head2, tail2, _ = second
    if gap is None:
        return None, 0
    same_end = 0
    while same_end < min(len(tail1), len(tail2)) and tail1[-1 - same_end] == tail2[-1 - same_end]:
        same_end += 1
    same_start = 0
    while same_start < min(len(head1), len(head2)) and head1[same_start] == head2[same_start]:
        same_start += 1
    if same_start < 2:
        return None, 0
    return tail1[len(tail1) - same_end:] + gap + head1[:same_start], same_end


def _decode_element(decode: Any, data: memoryview) -> Any:
    try:
        return decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        pass
    try:  # exactly what the json reader would give (NaN, 1e400...) or say
        return json.loads(bytes(data).decode("utf-8"))
    except (ValueError, RecursionError):
        raise StreamError("invalid element") from None


def _skip(buf: str, pos: int) -> int:
    n = len(buf)
    while pos < n and buf[pos] in _WHITESPACE:
        pos += 1
    return pos


def _more(f: Any, buf: Any, pos: int, chunk: int) -> tuple[Any, int, bool]:
    """Drop what was consumed, append the next chunk; (buffer, position, end of file)."""
    more = f.read(chunk)
    return buf[pos:] + more, 0, not more


def open_nsg_items(path: str | Path, typed: Typed | None = None) -> tuple[Iterator[Any], NsgDocument | None]:
    """The NSG objects of one input file: streamed when the file is a UTF-8 JSON list (document None), else
    read whole by :func:`shared.app.files.load_nsg_document` (every other shape and encoding, stdin, and every
    error worded with file, line and column), which is returned too (paging markers, text for locations).

    A list that turns out malformed after some NSGs were yielded raises the whole-file reader's InputError.
    ``typed`` as in :func:`iter_list_items` (streamed lists only).
    """
    from shared.app.files import STDIN, load_nsg_document

    if str(path) == STDIN:
        doc = load_nsg_document(path)
        return iter(doc.items), doc
    stream = iter_list_items(path, typed=typed)
    try:
        first = next(stream)
    except StopIteration:
        return iter(()), None
    except NotStreamable:
        try:  # {"value": [...]} / {"data": [...]}: the list inside, streamed the same way
            return _page(path, typed)
        except (NotStreamable, StreamError, OSError, UnicodeDecodeError, RecursionError):
            pass
        doc = load_nsg_document(path)
        return iter(doc.items), doc
    except (StreamError, OSError, UnicodeDecodeError, RecursionError):
        doc = load_nsg_document(path)
        return iter(doc.items), doc
    return _rest(first, stream, path), None


# --- pages: {"value": [...], "nextLink": ...} and {"data": [...], "totalRecords": ...} ------------------------
#
# The shape of a page (which key holds the NSGs, whether an "id" makes it one NSG instead, the paging markers
# after the list) is only known at its end. So a first pass walks the top-level object without building the
# NSGs: each key, each small value decoded (paging markers), each list under "value"/"data" skipped element by
# element (its length counted). From those, files._items and files.paging_markers decide exactly as they do on
# the whole document; only when they pick one of those lists is it streamed, in a second pass from its offset.
# Anything else (one NSG, a malformed or odd document, a value msgspec does not read) is read whole as before.

_SMALL = 1 << 16  # a top-level value other than the lists is decoded only up to this size (else: read whole)


def _page(path: str | Path, typed: Any) -> tuple[Iterator[Any], NsgDocument]:
    from shared.app.files import NsgDocument, _items, paging_markers, source_name

    if msgspec is None:
        raise NotStreamable
    skeleton, lists = _page_layout(path)
    source = source_name(path)
    try:
        chosen = _items(skeleton, source)
    except InputError:
        raise NotStreamable from None  # the whole reader words it
    key = next((k for k, (placeholder, _) in lists.items() if chosen is placeholder), None)
    if key is None:
        raise NotStreamable  # one NSG (or a list that is not the NSGs'): read whole
    doc = NsgDocument(source, "", [], paging_markers(skeleton), None)
    stream = _iter_list_items_msgspec(path, CHUNK, typed, start=lists[key][1])
    return _rest_of_page(stream, path), doc


def _rest_of_page(stream: Iterator[Any], path: str | Path) -> Iterator[Any]:
    from shared.app.files import load_nsg_document, source_name

    try:
        yield from stream
    except (NotStreamable, StreamError, OSError, UnicodeDecodeError, RecursionError):
        load_nsg_document(path)  # raises InputError naming the file and what is wrong
        raise InputError("not valid JSON: the list could not be read element by element",
                         source=source_name(path)) from None


def _page_layout(path: str | Path) -> tuple[dict[str, Any], dict[str, tuple[list[None], int]]]:
    """The top-level object of ``path`` with each list under "value"/"data" replaced by a list of as many
    Nones, and those placeholders with the file offset of their list; NotStreamable/StreamError for anything
    that is not an object of small values and such lists."""
    skip_value = msgspec.json.Decoder(msgspec.Raw).decode
    decoder = msgspec.json.Decoder().decode

    def decode(raw: bytes) -> Any:
        try:
            return decoder(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # NaN, 1e400...: read whole
            raise NotStreamable from None

    skeleton: dict[str, Any] = {}
    lists: dict[str, tuple[list[None], int]] = {}
    with open(path, "rb") as f:
        cursor = _Cursor(f)
        if cursor.byte() != ord("{"):
            raise NotStreamable
        cursor.pos += 1
        first = True
        while True:
            c = cursor.byte()
            if c == ord("}"):
                cursor.pos += 1
                break
            if not first:
                if c != _COMMA:
                    raise StreamError("expected ','")
                cursor.pos += 1
            key = decode(cursor.value(skip_value))
            if type(key) is not str or cursor.byte() != ord(":"):
                raise StreamError("expected a key")
            cursor.pos += 1
            if key in ("value", "data") and cursor.byte() == _OPEN:
                start = cursor.offset()
                end_at: list[int] = []
                count = sum(1 for _ in _iter_list_items_msgspec(path, CHUNK, _skip_element, start, end_at))
                if not end_at:
                    raise NotStreamable  # the json reader had to take over: read whole
                placeholder: list[None] = [None] * count
                skeleton[key] = placeholder
                lists[key] = (placeholder, start)
                cursor.seek(end_at[0])
            else:
                raw = cursor.value(skip_value)
                if len(raw) > _SMALL:
                    raise NotStreamable
                skeleton[key] = decode(raw)
                lists.pop(key, None)  # a later duplicate replaces the list, as json.load keeps the last
            first = False
        if cursor.byte() is not None:
            raise StreamError("data after the document")
    return skeleton, lists


def _skip_element(data: Any) -> bool:
    return True  # counted, not decoded (the first pass of a page)


class _Cursor:
    """A position in a file read in chunks, for the first pass over a page."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.base = 0
        self.buf = f.read(CHUNK)
        if self.buf.startswith(codecs.BOM_UTF8):
            self.buf = self.buf[3:]
            self.base = 3
        self.pos = 0
        self.eof = not self.buf

    def offset(self) -> int:
        return self.base + self.pos

    def seek(self, offset: int) -> None:
        self.f.seek(offset)
        self.base, self.pos = offset, 0
        self.buf = self.f.read(CHUNK)
        self.eof = not self.buf

    def _more(self) -> bool:
        if self.eof:
            return False
        self.base += self.pos
        self.buf, self.pos, self.eof = _more(self.f, self.buf, self.pos, CHUNK)
        return True

    def byte(self) -> int | None:
        """The next byte after whitespace (None at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return None

    def value(self, skip_value: Any) -> bytes:
        """The bytes of the next JSON value (after whitespace), the cursor moved past it."""
        self.byte()
        while True:
            try:
                with memoryview(self.buf) as view:
                    skip_value(view[self.pos:])  # no error: nothing after it yet, it may go on in the next chunk
            except msgspec.DecodeError as exc:
                message = str(exc)
                found = _TRAILING.search(message)
                if found:
                    end = self.pos + int(found.group(1)) - 1
                    raw = self.buf[self.pos:end]
                    self.pos = end
                    return raw
                if "truncated" not in message:
                    raise StreamError("invalid value") from None
            except RecursionError:
                raise StreamError("nested too deeply") from None
            if not self._more():
                raise StreamError("unterminated document")


def _rest(first: Any, stream: Iterator[Any], path: str | Path) -> Iterator[Any]:
    from shared.app.files import load_nsg_document, source_name

    yield first
    try:
        yield from stream
    except (StreamError, OSError, UnicodeDecodeError, RecursionError):
        load_nsg_document(path)  # raises InputError naming the file and what is wrong
        raise InputError("not valid JSON: the list could not be read element by element",
                         source=source_name(path)) from None
