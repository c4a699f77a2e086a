"""The C JSON path (issue 15): same acceptance and errors as the standard library, compact unless asked."""

from __future__ import annotations

import gc
import json

import pytest

from shared import fastjson
from shared.cli import main
from shared.gcpolicy import batch_without_cyclic_gc
from tests.nsgfactory import nsg, rule


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '[1, 2.5, "é"]', '{"a": 1, "a": 2}'])
def test_loads_accepts_what_the_standard_library_accepts(text):
    assert json.dumps(fastjson.loads(text), sort_keys=True) == json.dumps(json.loads(text), sort_keys=True)


def test_integers_beyond_64_bits_are_rejected_as_priorities_either_way(tmp_path, capsys):
    """orjson reads them as floats, json as ints: no NSG field takes such a value, both are input errors."""
    body = nsg([rule("AllowSSH", 300, "22", "*")])
    text = json.dumps(body).replace('"priority": 300', '"priority": 123456789012345678901234567890')
    path = tmp_path / "nsg.json"
    path.write_text(text)
    assert main(["scan", str(path)]) == 2
    assert "priority" in capsys.readouterr().err


def test_loads_errors_keep_the_standard_librarys_line_and_column():
    with pytest.raises(json.JSONDecodeError) as info:
        fastjson.loads('{\n  "a": 1,\n  "b": }')
    assert (info.value.lineno, info.value.colno) == (3, 8)


def test_dumps_compact_and_indented():
    value = {"a": [1, {"b": "é"}], "big": 2**70}
    assert fastjson.dumps(value) == '{"a":[1,{"b":"é"}],"big":1180591620717411303424}'
    assert fastjson.dumps({"a": [1]}, indent=True) == '{\n  "a": [\n    1\n  ]\n}'


def test_scan_json_is_compact_when_piped_and_indented_on_request(tmp_path, capsys):
    path = tmp_path / "nsg.json"
    path.write_text(json.dumps(nsg([rule("AllowSSH", 300, "22", "*")])))
    main(["scan", str(path), "--format", "json"])
    compact = capsys.readouterr().out
    main(["scan", str(path), "--format", "json", "--indent"])
    indented = capsys.readouterr().out
    assert compact.count("\n") == 1 and indented.count("\n") > 10
    assert json.loads(compact) == json.loads(indented)


def test_batch_pauses_the_collector_and_restores_it():
    assert gc.isenabled()
    with batch_without_cyclic_gc():
        assert not gc.isenabled() and gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
