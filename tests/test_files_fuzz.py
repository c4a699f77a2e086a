"""Every file a person hands to the CLI is hostile: the readers raise our InputError or return, nothing else.

Hypothesis feeds random bytes, random JSON documents and mutated real samples through the NSG document
reader (decode, parse, shape, completeness, duplicates), the SARIF locator and the table-row reader.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.app.files import DocumentChecker, decode_text, load_nsg_document, load_rows
from shared.app.locations import locate
from shared.core.errors import InputError
from shared.core.model import parse_nsg

SAMPLE = Path("examples/estate.json").read_bytes()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "name", "properties", "securityRules", "value", "data", "nextLink", "$skipToken",
                         "resultTruncated", "totalRecords", "RecordType", "OpenFindingIds", "tables", "rows",
                         "columns", "x"]), inner, max_size=5),
    max_leaves=20)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_everything(path: Path) -> None:
    try:
        doc = load_nsg_document(path)
    except InputError:
        return
    DocumentChecker().check(doc)
    locate(doc.text, doc.data, len(doc.items))
    for item in doc.items:
        with contextlib.suppress(InputError):
            parse_nsg(item)


def _read_rows(path: Path) -> None:
    with contextlib.suppress(InputError):
        load_rows(path, kinds=("finding",))


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_are_an_input_error_or_read(tmp_path, data):
    path = tmp_path / "f.json"
    path.write_bytes(data)
    _read_everything(path)
    _read_rows(path)


@FUZZ
@given(doc=json_values)
def test_random_json_documents_are_an_input_error_or_read(tmp_path, doc):
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    _read_everything(path)
    _read_rows(path)
    path.write_text("\n".join(json.dumps(x) for x in (doc if isinstance(doc, list) else [doc])))
    _read_rows(path)


@FUZZ
@given(cut=st.integers(0, len(SAMPLE)), junk=st.binary(max_size=8))
def test_mutated_real_sample_is_an_input_error_or_read(tmp_path, cut, junk):
    path = tmp_path / "f.json"
    path.write_bytes(SAMPLE[:cut] + junk + SAMPLE[cut:])
    _read_everything(path)


@FUZZ
@given(text=st.text(max_size=200), encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_any_text_with_a_bom_decodes_to_itself(text, encoding):
    # A leading U+FEFF is the BOM; a leading NUL after a UTF-16 LE BOM spells the UTF-32 LE BOM (no JSON
    # text starts with NUL, so UTF-32 is the right reading there).
    assume(not text.startswith(("\ufeff", "\x00")))
    try:
        assert decode_text(text.encode(encoding, errors="surrogatepass"), "x") == text
    except UnicodeEncodeError:
        pass
    except InputError:
        assert encoding == "utf-8" and "\x00" in text  # NUL without a BOM reads as binary, on purpose
