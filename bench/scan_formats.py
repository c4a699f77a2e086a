"""``nsg-guard scan`` end to end per output format on one generated file, and print one line per format.

    python bench/scan_formats.py --nsgs 1000

Prints ``scan format=F nsgs=N findings=K seconds=S``: the whole command (read, parse, evaluate, locate for
SARIF, render) in this process. Each NSG has an SSH and an RDP rule open to the internet with the same rule
names in every NSG (the case where SARIF used to point at another NSG's rule, and re-split the input per
finding: 77 s for 1,000 NSGs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.cli import main

SUB = "2c1e3d4f-0000-4000-8000-00000000a11c"


def nsg(i: int) -> dict:
    nid = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n{i}"
    rules = [{"name": name, "id": f"{nid}/securityRules/{name}", "properties": {
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port, "sourceAddressPrefix": "*",
        "destinationAddressPrefix": "*", "access": "Allow", "priority": prio, "direction": "Inbound"}}
        for name, port, prio in (("AllowSSH", "22", 300), ("AllowRDP", "3389", 310))]
    return {"name": f"n{i}", "id": nid, "location": "westeurope", "properties": {"securityRules": rules}}


def run(path: Path, fmt: str) -> tuple[float, int]:
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        main(["scan", str(path), "--format", fmt, "--fail-on", "never", "--color", "never"])
    seconds = time.perf_counter() - started
    text = out.getvalue()
    findings = len(json.loads(text)["findings"]) if fmt == "json" else (
        len(json.loads(text)["runs"][0]["results"]) if fmt == "sarif" else -1)
    return seconds, findings


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nsgs", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estate.json"
        path.write_text(json.dumps([nsg(i) for i in range(args.nsgs)], indent=2))
        for fmt in ("json", "sarif", "table"):
            seconds, findings = run(path, fmt)
            print(f"scan format={fmt} nsgs={args.nsgs} findings={findings} seconds={seconds:.2f}")


if __name__ == "__main__":
    main_()
