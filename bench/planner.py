"""Revert planner cost on large NSGs: split-range Allows (the internet split into N slices on port 22, each
rule only a part, together internet-class) plus unrelated rules, planned with the enforce path's planner.

    python bench/planner.py --rules 300 1000

Prints one line per size: ``planner rules=N targets=T actions=A seconds=S``. The planner is bounded: a
plan needing more writes than the blast radius becomes one broad deny, and candidates are checked in one
batch with the exact engine.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, watched_ports
from shared.core.remediation import RevertScope, plan_revert

NSG_ID = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/big"


def split_range_nsg(n: int) -> dict:
    """n inbound Allow 22 rules whose sources split 0.0.0.0/0 into n CIDR blocks (n rounded to a power of 2
    for the split, the rest unrelated 443 rules), at consecutive priorities with gaps."""
    bits = max(0, (n - 1).bit_length() - 1) if n > 1 else 0
    blocks = list(ipaddress.ip_network("0.0.0.0/0").subnets(prefixlen_diff=bits))
    rules = []
    for i in range(n):
        if i < len(blocks):
            port, src = "22", str(blocks[i])
        else:
            port, src = "443", f"10.{i // 250}.{i % 250}.0/24"
        rules.append({"name": f"r{i:04d}", "properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port, "sourceAddressPrefix": src,
            "destinationAddressPrefix": "*", "access": "Allow", "priority": 100 + 2 * i + 1 if i < 1990 else 4096,
            "direction": "Inbound"}})
    return {"id": NSG_ID, "name": "big", "location": "westeurope", "properties": {"securityRules": rules}}


def run(n: int, max_changes: int) -> str:
    engine = Engine(Policy(watched=watched_ports((), ())))
    nsg = parse_nsg(split_range_nsg(n))
    start = time.perf_counter()
    evaluation = engine.evaluate(nsg)
    plan = plan_revert(nsg, evaluation.findings, engine.evaluator, RevertScope(), reevaluate=lambda x:
                       engine.evaluate(x).findings, max_changes=max_changes)
    seconds = time.perf_counter() - start
    targets = len({f.rule.name for f in plan.targets})
    return f"planner rules={n} targets={targets} actions={len(plan.actions)} seconds={seconds:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--max-changes", type=int, default=10)
    args = parser.parse_args()
    for n in args.rules:
        print(run(n, args.max_changes), flush=True)


if __name__ == "__main__":
    main()
