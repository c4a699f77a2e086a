"""The streaming list reader gives exactly what json.load gives, or hands the file back to the whole reader."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app.jsonstream import NotStreamable, StreamError, _iter_list_items_json, iter_list_items
from shared.core.errors import InputError

values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                st.text(max_size=30)),
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(values, max_size=8), chunk=st.integers(1, 64), bom=st.sampled_from(["", "\ufeff"]),
       pretty=st.booleans(), reader=st.sampled_from([iter_list_items, _iter_list_items_json]))
def test_items_equal_json_load_for_any_chunk_size(tmp_path_factory, items, chunk, bom, pretty, reader):
    path = tmp_path_factory.mktemp("s") / "list.json"
    path.write_text(bom + json.dumps(items, indent=2 if pretty else None), encoding="utf-8")
    assert list(reader(path, chunk=chunk)) == items


HOSTILE_ELEMENTS = ['NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '"\\ud800"', '"\\udc00\\ud800"',
                    '"\\ud83d\\ude00"', '123456789012345678901234567890', '-0', '-0.0', '1E5',
                    '"caf\u00e9 \u20ac"', '{"a": 1, "a": 2}',
                    '[' * 3000 + ']' * 3000, '{"k": [NaN, {"x": Infinity}]}', '"tab\\tquote\\"end"', '{}', '[]']


@pytest.mark.parametrize("element", HOSTILE_ELEMENTS)
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_elements_outside_plain_json_read_as_json_load_reads_them(tmp_path, element, chunk):
    """NaN, Infinity, numbers beyond a double, lone surrogates, deep nesting: what msgspec does not take is read
    by the json decoder, so every reader gives json.load's items (or hands the file back), wherever they sit."""
    path = tmp_path / "list.json"
    text = f'[{{"name": "before"}}, {element}, "after", {element}]'
    path.write_text(text, encoding="utf-8")
    try:
        expected = json.loads(text)
    except RecursionError:
        with pytest.raises((StreamError, RecursionError)):
            list(iter_list_items(path, chunk=chunk))
        return
    got = list(iter_list_items(path, chunk=chunk))
    assert json.dumps(got) == json.dumps(expected)  # NaN != NaN: compare the renderings


def test_the_msgspec_reader_is_the_one_in_use(tmp_path, monkeypatch):
    """msgspec is pinned (requirements.txt): list inputs are read through it, and a plain list (any chunk
    size) never falls back to the json reader, e.g. because msgspec words its errors differently."""
    from shared.app import jsonstream
    from tests.nsgfactory import nsg, rule

    assert jsonstream.msgspec is not None
    items = [nsg([rule("AllowSSH", 300, "22", "*")], name=f"n{i}") for i in range(20)]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(items, indent=2))

    def no_fallback(*args, **kwargs):
        raise AssertionError("fell back to the json reader")
        yield  # pragma: no cover

    monkeypatch.setattr(jsonstream, "_iter_list_items_json", no_fallback)
    for chunk in (1, 100, 1 << 20):
        assert list(iter_list_items(path, chunk=chunk)) == items


@pytest.mark.parametrize("text", ['{"value": []}', '"x"', "", "  ", "{}"])
def test_documents_that_are_not_lists_go_to_the_whole_reader(tmp_path, text):
    path = tmp_path / "doc.json"
    path.write_text(text)
    with pytest.raises(NotStreamable):
        next(iter_list_items(path))


@pytest.mark.parametrize("text", ["[1, 2", "[1 2]", "[1,]", "[1] x", "[{\"a\": }]", "[1,,2]"])
def test_malformed_lists_raise_stream_error(tmp_path, text):
    path = tmp_path / "doc.json"
    path.write_text(text)
    with pytest.raises(StreamError):
        list(iter_list_items(path, chunk=2))


# --- scan: list inputs read NSG by NSG, JSON written as produced (issue 15) -----------------------------------

def test_streamed_json_is_byte_identical_to_the_buffered_rendering(capsys):
    import io
    from datetime import UTC, datetime

    from shared.app.output import render_json, stream_json
    from shared.app.scan import scan_files
    from shared.core.policy import Engine, Policy, watched_ports

    engine = Engine(Policy(watched=watched_ports(ssh_ports=(2222,))))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    buffered = render_json(list(scan_files(["examples/estate.json"], engine, [], now=now)), indent=False)
    out = io.StringIO()
    seen = []
    stream_json(scan_files(["examples/estate.json"], engine, [], now=now), out, seen.append)
    assert out.getvalue() == buffered + "\n" and len(seen) == json.loads(buffered)["summary"]["findings"] > 0


def test_scan_prints_nothing_when_an_nsg_late_in_a_list_is_invalid(tmp_path, capsys):
    from shared.cli import main
    from tests.nsgfactory import nsg, rule

    good = [nsg([rule("AllowSSH", 300, "22", "*")], name=f"n{i}") for i in range(5)]
    bad = nsg([rule("Bad", 300, "22", "10.0.0.0/33")], name="late")
    path = tmp_path / "list.json"
    path.write_text(json.dumps([*good, bad]))
    assert main(["scan", str(path), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "late" in captured.err and "10.0.0.0/33" in captured.err


def test_scan_of_a_list_truncated_mid_way_is_a_clear_error(tmp_path, capsys):
    from shared.cli import main
    from tests.nsgfactory import nsg, rule

    text = json.dumps([nsg([rule("AllowSSH", 300, "22", "*")], name=f"n{i}") for i in range(50)], indent=1)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) * 3 // 4])
    assert main(["scan", str(path), "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not valid JSON" in captured.err and "line" in captured.err
    assert "Traceback" not in captured.err


# --- runs of elements decoded at once (issue 15, third push) ---------------------------------------------------

# Strings that look like the separator between two list elements, in every layout json.dumps writes.
LOOKALIKES = ['}, {"name": "n', '},{"name":"n', '},\n {\n  "name": "n', '}]', '"}, {"', "},", "{", "}", '\\"}, {"']
objects_like_nsgs = st.recursive(
    st.one_of(st.sampled_from(LOOKALIKES), st.text(max_size=6), st.integers(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.fixed_dictionaries({"name": st.sampled_from(["n1", "n2", "nsg-1", *LOOKALIKES])},
                                                  optional={"properties": inner, "x": inner})),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(st.fixed_dictionaries({"name": st.sampled_from(["n1", "n2", "nsg-1", *LOOKALIKES])},
                                            optional={"properties": objects_like_nsgs, "id": st.text(max_size=4)}),
                      max_size=12),
       layout=st.sampled_from([None, 0, 1, 2, "compact"]), chunk=st.integers(8, 600),
       run_bytes=st.integers(16, 2000), odd=st.sampled_from([None, "NaN", "1e400", '"\\ud800"']))
def test_runs_of_elements_equal_json_load(tmp_path_factory, items, layout, chunk, run_bytes, odd):
    """A run ends where the learnt separator last occurs; strings that look like it (in any layout), short
    chunks and short runs, and elements msgspec does not read must still give json.load's items."""
    from shared.app import jsonstream

    text = json.dumps(items, separators=(",", ":")) if layout == "compact" else json.dumps(items, indent=layout)
    if odd and items:
        text = text[:-1] + f", {odd}]"
    path = tmp_path_factory.mktemp("runs") / "list.json"
    path.write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(jsonstream, "RUN_BYTES", run_bytes)
        try:
            got = list(iter_list_items(path, chunk=chunk))
        except StreamError:  # handed back to the whole-file reader: only for what msgspec cannot skip
            assert odd == '"\\ud800"', text  # msgspec's skip reads a lone surrogate before "]" as truncated
            return
    assert json.dumps(got) == json.dumps(json.loads(text))


def test_a_plain_nsg_list_is_read_in_runs_of_typed_structs(tmp_path):
    """The run path is the one taken for an az/ARM list (compact or indented), and it yields parse_nsg's NSGs,
    also when a description holds the separator the runs are cut at and the NSG names (unlike the ends of the
    NSGs) share no more than the rules' names do."""
    from shared.app import jsonstream
    from shared.app.typednsg import typed_parser
    from shared.core.model import parse_nsg
    from tests.test_typed_nsg import plain_nsg

    items = [plain_nsg(i) for i in range(200)]
    for i, item in enumerate(items):  # names that differ from their first letter: rules start alike too
        item["name"] = f"{'abcdefgh'[i % 8]}-{i}"
    items[50]["properties"]["securityRules"][0]["properties"]["description"] = '}, {"name": "n'
    items[51]["properties"]["securityRules"][0]["properties"]["description"] = '},\n  {\n    "name": "n'
    for indent in (None, 2):
        path = tmp_path / "list.json"
        path.write_text(json.dumps(items, indent=indent))
        reader = typed_parser()
        calls = {"many": 0, "one": 0}
        many, one = reader._many, reader._one

        def count_many(data, many=many, calls=calls):
            calls["many"] += 1
            return many(data)

        def count_one(data, one=one, calls=calls):
            calls["one"] += 1
            return one(data)

        reader._many, reader._one = count_many, count_one
        got = list(jsonstream.iter_list_items(path, chunk=1 << 14, typed=reader))
        assert got == [parse_nsg(item) for item in items]
        assert calls["many"] > 5 and calls["one"] < len(items) // 4, calls


# --- pages ({"value": [...]}, {"data": [...]}) streamed like lists --------------------------------------------

def whole(path):
    """What the whole-file reader gives: the items and the paging markers, or its error."""
    from shared.app.files import load_nsg_document

    try:
        doc = load_nsg_document(path)
    except InputError as exc:
        return ("error", str(exc))
    return doc.items, doc.partial


def streamed(path):
    from shared.app.jsonstream import open_nsg_items

    try:
        items, doc = open_nsg_items(path)
        return list(items), (doc.partial if doc is not None else [])
    except InputError as exc:
        return ("error", str(exc))


PAGE_VALUES = st.one_of(
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(["n1", "n2", '}, {"name": "n'])},
                                   optional={"id": st.sampled_from(["/a", "/b"]), "properties": values}),
             max_size=5),
    values, st.sampled_from(["https://next", "", None, 3, "true", True]))
PAGE_KEYS = st.sampled_from(["value", "data", "nextLink", "@odata.nextLink", "$skipToken", "skip_token",
                             "resultTruncated", "totalRecords", "total_records", "count", "id", "name", "facets"])


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(PAGE_KEYS, PAGE_VALUES), max_size=6), indent=st.sampled_from([None, 1, 2]),
       bom=st.booleans(), odd=st.sampled_from([None, "NaN", "1e400", "[1, 2", '"x"']))
def test_a_page_streamed_gives_what_the_whole_reader_gives(tmp_path_factory, pairs, indent, bom, odd):
    """Any top-level object (keys in any order, repeated, paging markers before or after the list, an 'id' that
    makes it one NSG, odd or malformed values): the same items and markers as the whole reader, or its error."""
    body = ",".join(f"{json.dumps(k)}: {json.dumps(v, indent=indent)}" for k, v in pairs)
    if odd is not None and pairs:
        body += f', "extra": {odd}'
    text = ("\ufeff" if bom else "") + "{" + body + "}"
    path = tmp_path_factory.mktemp("page") / "page.json"
    path.write_text(text, encoding="utf-8")
    assert json.dumps(streamed(path)) == json.dumps(whole(path))


def test_a_value_page_is_streamed_not_read_whole(tmp_path, monkeypatch):
    """An ARM page is read NSG by NSG (the whole reader is never called) with its markers read after the list,
    and a Resource Graph response's totalRecords is checked against the streamed count."""
    from shared.app import files, jsonstream
    from tests.test_typed_nsg import plain_nsg

    nsgs = [plain_nsg(i) for i in range(40)]
    cases = [({"value": nsgs, "nextLink": None}, []),
             ({"value": nsgs, "nextLink": "https://management.azure.com/next"},
              ["'nextLink' is set (ARM paging: later pages are missing)"]),
             ({"totalRecords": 41, "count": 40, "data": nsgs, "resultTruncated": "false"},
              ["'totalRecords' is 41 but the file holds 40 rows"])]
    for page, markers in cases:
        path = tmp_path / "page.json"
        path.write_text(json.dumps(page, indent=2))
        with monkeypatch.context() as m:
            m.setattr(files, "load_nsg_document", lambda *a: pytest.fail("read whole"))
            items, doc = jsonstream.open_nsg_items(path)
            assert list(items) == nsgs
        assert doc is not None and doc.partial == markers == whole(path)[1]
