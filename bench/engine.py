"""Engine throughput: parse + evaluate N seeded random NSGs, streaming, and print one line.

    python bench/engine.py --nsgs 50000 --rules 20      # 1,000,000 rules

Prints ``engine nsgs=N rules=R seconds=S us_per_rule=U peak_rss_mb=M`` where S covers JSON decoding,
parsing and evaluation (NSG generation is excluded), plus a baseline line for ``json.loads`` alone on
the same documents in the same process, and the ratio between the two.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.model import parse_nsg
from shared.policy import Engine, Policy, watched_ports

TAGS = ["VirtualNetwork", "AzureLoadBalancer", "AzureMachineLearning", "BatchNodeManagement", "GatewayManager",
        "Internet", "*", "AzureCloud", "Storage.WestEurope"]
PORTS = ["22", "443", "80", "3389", "*", "8080-8090", "1-1024", "2222", "44224", "29876-29877", "5985-5986"]


def make_nsg(rng: random.Random, index: int, rules: int, cidrs: list[str]) -> dict:
    nsg_id = (f"/subscriptions/{index % 97:08d}-0000-4000-8000-000000000000/resourceGroups/rg-{index % 1000}"
              f"/providers/Microsoft.Network/networkSecurityGroups/nsg-{index}")
    priorities = rng.sample(range(100, 4097), rules)
    out = []
    for n, prio in enumerate(priorities):
        props = {"provisioningState": "Succeeded", "protocol": rng.choice(["Tcp", "Tcp", "*", "Udp"]),
                 "sourcePortRange": "*", "destinationAddressPrefix": "*",
                 "access": rng.choice(["Allow", "Allow", "Deny"]), "priority": prio,
                 "direction": rng.choice(["Inbound", "Inbound", "Outbound"]),
                 "sourcePortRanges": [], "destinationPortRanges": [], "sourceAddressPrefixes": [],
                 "destinationAddressPrefixes": []}
        if rng.random() < 0.3:
            props["destinationPortRanges"] = rng.sample(PORTS[:4] + PORTS[5:], 2)
        else:
            props["destinationPortRange"] = rng.choice(PORTS)
        roll = rng.random()
        if roll < 0.3:
            props["sourceAddressPrefix"] = rng.choice(TAGS)
        elif roll < 0.7:
            props["sourceAddressPrefix"] = rng.choice(cidrs)
        else:
            props["sourceAddressPrefixes"] = rng.sample(cidrs, rng.randint(2, 5))
        out.append({"name": f"rule-{n}", "id": f"{nsg_id}/securityRules/rule-{n}",
                    "etag": 'W/"00000000-0000-4000-8000-000000000000"',
                    "type": "Microsoft.Network/networkSecurityGroups/securityRules", "properties": props})
    return {"name": f"nsg-{index}", "id": nsg_id, "etag": 'W/"00000000-0000-4000-8000-000000000000"',
            "type": "Microsoft.Network/networkSecurityGroups", "location": "westeurope",
            "tags": {"owner": f"team-{index % 50}"},
            "properties": {"provisioningState": "Succeeded", "securityRules": out}}


def documents(nsgs: int, rules: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    cidrs = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/{rng.choice([16, 20, 24, 28, 32])}"
             for _ in range(3000)] + ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "0.0.0.0/0", "::/0",
                                      "2a01:111::/32"]
    for i in range(nsgs):
        yield json.dumps(make_nsg(rng, i, rules, cidrs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsgs", type=int, default=50_000)
    parser.add_argument("--rules", type=int, default=20, help="rules per NSG")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    engine = Engine(Policy(watched=watched_ports(ssh_ports=(2222,))))
    engine_seconds = baseline_seconds = 0.0
    findings = total_rules = 0
    for text in documents(args.nsgs, args.rules, args.seed):
        t0 = time.perf_counter()
        json.loads(text)
        t1 = time.perf_counter()
        result = engine.evaluate(parse_nsg(json.loads(text)))
        t2 = time.perf_counter()
        baseline_seconds += t1 - t0
        engine_seconds += t2 - t1
        findings += len(result.findings)
        total_rules += args.rules
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"engine nsgs={args.nsgs} rules={total_rules} seconds={engine_seconds:.2f} "
          f"us_per_rule={1e6 * engine_seconds / total_rules:.2f} peak_rss_mb={peak_mb:.0f} findings={findings}")
    print(f"baseline json_loads_only seconds={baseline_seconds:.2f} "
          f"us_per_rule={1e6 * baseline_seconds / total_rules:.2f} "
          f"engine_over_baseline={engine_seconds / baseline_seconds:.1f}x")


if __name__ == "__main__":
    main()
