#!/usr/bin/env bash
# Offline validation of the NSG Guard deployment (network only for PyPI, the first time a venv is built):
#   1. every .bicep file parses with pycep-parser (the Bicep parser checkov uses)
#   2. checkov -d infra --framework bicep arm json: zero failed checks, zero parsing errors
#      (skips are `// checkov:skip=CKV_...:reason` comments in the .bicep files; listed below)
#   3. the workbook JSON is up to date with queries/*.kql
#   4. pytest tests/infra
#   5. opt-in (NSG_GUARD_KQL_CHECK=1, needs node + the npm registry once): semantic check of queries/*.kql
#      with the Kusto language service against the table schema
# Usage: bash infra/validate.sh
# The tools live in their own venv (checkov pins many packages): $NSG_GUARD_INFRA_VENV, default
# ~/.cache/nsg-guard/venv-infra, rebuilt when requirements-infra.txt changes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${NSG_GUARD_INFRA_VENV:-"${XDG_CACHE_HOME:-$HOME/.cache}/nsg-guard/venv-infra"}
req="$root/requirements-infra.txt"
stamp="$venv/.requirements-infra.sha256"
cd "$root"
start=$(date +%s)

want=$( (sha256sum "$req"; python3 --version) | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "== creating infra venv at $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
py="$venv/bin/python"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== 1/5 pycep: parse every .bicep file"
"$py" - <<'PY'
import pathlib, sys
from pycep import BicepParser
parser = BicepParser()
files = sorted(pathlib.Path("infra").rglob("*.bicep"))
bad = 0
for f in files:
    try:
        parser.parse(text=f.read_text())
        print(f"   ok   {f}")
    except Exception as exc:  # report every file, then fail
        bad += 1
        print(f"   FAIL {f}: {str(exc).splitlines()[0]}")
print(f"   pycep: {len(files) - bad} of {len(files)} files parsed")
sys.exit(1 if bad or not files else 0)
PY

echo "== 2/5 checkov"
set +e
"$venv/bin/checkov" -d infra --framework bicep arm json --skip-download --quiet --compact \
  -o cli -o json --output-file-path "console,$out/checkov.json"
ck=$?
set -e
"$py" - "$out/checkov.json" "$ck" <<'PY'
import json, pathlib, re, sys
data = json.loads(pathlib.Path(sys.argv[1]).read_text() or "[]")
reports = data if isinstance(data, list) else [data]
tot = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for r in reports:
    for k in tot:
        tot[k] += r.get("summary", {}).get(k, 0)
skips = []
for f in sorted(pathlib.Path("infra").rglob("*.bicep")):
    for line in f.read_text().splitlines():
        m = re.search(r"checkov:skip=([A-Z0-9_]+):(.*)", line)
        if m:
            skips.append((str(f), m.group(1), m.group(2).strip()))
for f, cid, why in skips:
    print(f"   skip {cid:<14} {f}: {why}")
print("   checkov: passed={passed} failed={failed} skipped={skipped} parsing_errors={parsing_errors}".format(**tot))
ok = tot["failed"] == 0 and tot["parsing_errors"] == 0 and tot["passed"] > 0 and sys.argv[2] == "0"
sys.exit(0 if ok else 1)
PY

echo "== 3/5 workbook is built from queries/*.kql"
"$py" infra/workbook/build.py --check

echo "== 4/5 pytest tests/infra"
"$py" -m pytest -q -p no:cacheprovider tests/infra
if [ "${NSG_GUARD_KQL_CHECK:-0}" = "1" ]; then
  echo "== 5/5 KQL semantic check (Kusto language service)"
  kqldir="$(dirname "$venv")/kql-check"
  mkdir -p "$kqldir"
  cp infra/kql/package.json "$kqldir/package.json"
  if [ ! -d "$kqldir/node_modules/@kusto/language-service-next" ]; then
    (cd "$kqldir" && npm install --no-audit --no-fund --silent)
  fi
  NODE_PATH="$kqldir/node_modules" node infra/kql/check_kql.js shared/schema/findings_table.json queries/*.kql
else
  echo "== 5/5 KQL semantic check skipped (set NSG_GUARD_KQL_CHECK=1 to run it; needs node/npm)"
fi
echo "== infra/validate.sh: all green in $(( $(date +%s) - start ))s"
