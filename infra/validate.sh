#!/usr/bin/env bash
# Offline validation of the NSG Guard deployment (needs PyPI only to build the venv the first time):
#   1. every .bicep file parses (pycep-parser, the parser checkov uses)
#   2. checkov -d infra --framework bicep,arm,json (zero failed checks; skips carry a written reason)
#   3. the workbook JSON is up to date with queries/*.kql
#   4. pytest tests/infra
# Usage: infra/validate.sh            (venv at $NSG_GUARD_INFRA_VENV or .venv-infra in the repo root)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${NSG_GUARD_INFRA_VENV:-"$root/.venv-infra"}
req="$root/requirements-infra.txt"
stamp="$venv/.requirements-infra.sha256"
cd "$root"

want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "== creating infra venv at $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
py="$venv/bin/python"

echo "== 1/4 pycep: parse every .bicep file"
"$py" - <<'PY'
import pathlib, sys
from pycep import BicepParser
parser = BicepParser()
files = sorted(pathlib.Path("infra").rglob("*.bicep"))
bad = 0
for f in files:
    try:
        parser.parse(text=f.read_text())
        print(f"   ok  {f}")
    except Exception as exc:  # noqa: BLE001 - report every file
        bad += 1
        print(f"   FAIL {f}: {str(exc).splitlines()[0]}")
print(f"   {len(files) - bad} of {len(files)} files parsed")
sys.exit(1 if bad or not files else 0)
PY

echo "== 2/4 checkov"
# --framework bicep scans *.bicep; arm/json cover infra/*.json (parameters, policy, workbook).
"$venv/bin/checkov" -d infra --framework bicep arm json --quiet --compact \
  --skip-download --output cli --soft-fail-on LOW 2>&1 | tee "$venv/checkov.log" | tail -n 40 || true
if grep -qE "^Failed checks: [1-9]|Failed checks: [1-9]" "$venv/checkov.log"; then
  echo "checkov: failed checks (see above)" >&2
  exit 1
fi
"$venv/bin/checkov" -d infra --framework bicep arm json --skip-download --output json > "$venv/checkov.json" 2>/dev/null || true
"$py" - "$venv/checkov.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
passed = failed = skipped = 0
for r in reports:
    s = r.get("summary", {})
    passed += s.get("passed", 0); failed += s.get("failed", 0); skipped += s.get("skipped", 0)
    for c in r.get("results", {}).get("skipped_checks", []):
        reason = (c.get("check_result") or {}).get("suppress_comment", "")
        print(f"   skipped {c['check_id']} {c.get('resource')} — {reason}")
print(f"   checkov: passed={passed} failed={failed} skipped={skipped}")
sys.exit(1 if failed else 0)
PY

echo "== 3/4 workbook is built from queries/*.kql"
"$py" infra/workbook/build.py --check

echo "== 4/4 pytest tests/infra"
"$py" -m pytest -q -p no:cacheprovider tests/infra
