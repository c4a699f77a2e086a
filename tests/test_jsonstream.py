"""The streaming list reader gives exactly what json.load gives, or hands the file back to the whole reader."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app.jsonstream import NotStreamable, StreamError, iter_list_items

values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                st.text(max_size=30)),
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(values, max_size=8), chunk=st.integers(1, 64), bom=st.sampled_from(["", "\ufeff"]),
       pretty=st.booleans())
def test_items_equal_json_load_for_any_chunk_size(tmp_path_factory, items, chunk, bom, pretty):
    path = tmp_path_factory.mktemp("s") / "list.json"
    path.write_text(bom + json.dumps(items, indent=2 if pretty else None), encoding="utf-8")
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
