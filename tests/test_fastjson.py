"""The C JSON encoder path (issue 15): compact unless asked, the collector paused during a scan."""

from __future__ import annotations

import gc
import json

from shared.app import fastjson
from shared.app.gcpolicy import batch_without_cyclic_gc
from shared.cli import main
from tests.nsgfactory import nsg, rule


def test_dumps_compact_and_indented():
    value = {"a": [1, {"b": "é"}], "big": 2**70}  # beyond 64 bits: the standard library's fallback
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
