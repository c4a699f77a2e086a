"""Engine throughput: parse + evaluate N seeded random NSGs, streaming, and print one line.

    python bench/engine.py --nsgs 50000 --rules 20      # 1,000,000 rules

Prints ``engine nsgs=N rules=R seconds=S us_per_rule=U peak_rss_mb=M`` where S covers JSON decoding,
parsing and evaluation (NSG generation is excluded), plus a baseline line for ``json.loads`` alone on
the same documents in the same process, and the ratio between the two.

Issue 15 modes (bench/README.md has the numbers and commands):

    python bench/engine.py --end-to-end --nsgs 10000 --rules 10 [--previous REF]
        whole-process ``nsg-guard scan FILE --format json`` (load + parse + evaluate 6 ports + JSON out, stdout
        to a file), this tree and REF (default: the engine before issues 9/15) side by side, interleaved.
    python bench/engine.py --linearity --rules 10 [--sizes 2000,20000,100000] [--keep] [--gc default]
        in-process scan-like run (streaming, or keeping every evaluation with --keep): us/rule per size.
    python bench/engine.py --codecs --nsgs 10000 --rules 10
        json vs orjson: decoding the list file and encoding the findings, collector on and off.
    python bench/engine.py --stages --nsgs 10000 --rules 10 --previous 69279d5 [--repeats 3]
        where the CPU of the scan loop goes (decode, checks, parse, evaluate, exemptions, encode), side by side.
    python bench/engine.py --readers --nsgs 10000 --rules 10 [--repeats 5]
        scan's list reader (NSG by NSG): the standard library's decoder against msgspec.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, watched_ports

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


PREVIOUS_REF = "e4c268a"  # main before issues 9 and 15 (engine as measured in issue 15)
REPO = Path(__file__).resolve().parents[1]
CHILD = ("import json, resource, sys, time\n"
         "sys.path.insert(0, '.')\n"
         "from shared.cli import main\n"
         "t = time.perf_counter(); code = main(sys.argv[1:]); wall = time.perf_counter() - t\n"
         "u = resource.getrusage(resource.RUSAGE_SELF)\n"
         "sys.stderr.write('RUSAGE ' + json.dumps({'code': code, 'wall': wall, 'cpu': u.ru_utime + u.ru_stime,"
         " 'rss_mb': u.ru_maxrss / 1024}) + '\\n')\n")


# Where a scan's CPU goes, stage by stage, for one tree (run with cwd=tree): the loop of shared/app/scan.py spelt
# out with a CPU clock read between the stages (the reads cost about 0.1 us/rule per stage).
STAGES_CHILD = """
import gc, json, sys, time
sys.path.insert(0, '.')
from datetime import UTC, datetime
from shared.cli import build_parser, policy_from_args
try:  # the layered tree (shared/core, shared/app, shared/cli)
    from shared.app import fastjson
    from shared.app.files import DocumentChecker
    from shared.app.jsonstream import iter_list_items
    from shared.app.output import finding_json
    from shared.cli import exempt as exempt_cli
    from shared.core.attachment import attachment_of
    from shared.core.exemptions import apply_exemptions
    from shared.core.model import parse_nsg
    from shared.core.policy import Engine
    from shared.core.model import Nsg
except ImportError:  # a reference tree from before the layout (e.g. 69279d5)
    from shared import exempt_cli, fastjson
    from shared.attachment import attachment_of
    from shared.exemptions import apply_exemptions
    from shared.files import DocumentChecker
    from shared.jsonstream import iter_list_items
    from shared.model import parse_nsg
    from shared.output import finding_json
    from shared.policy import Engine
    from shared.model import Nsg
try:  # the typed reader (issue 15, third push): list elements straight to an Nsg, its two halves timed apart
    from shared.app.typednsg import typed_parser
except ImportError:
    typed_parser = None
path, repeats = sys.argv[1], int(sys.argv[2])
args = build_parser().parse_args(['scan', path, '--format', 'json'])
clock = time.process_time
gc.freeze()
gc.disable()
best = None
for _ in range(repeats):
    engine, context, checker = Engine(policy_from_args(args)), exempt_cli.context_from_args(args), DocumentChecker()
    now = datetime.now(UTC)
    spent = [0.0] * 6
    typed = None
    if typed_parser is not None:
        typed = typed_parser(engine.policy.extra_service_tags)
        built = [0.0]

        def timed_build(doc, build=typed.build):
            t = clock()
            nsg = build(doc)
            built[0] += clock() - t
            return nsg

        typed.build = timed_build
    items = iter_list_items(path) if typed is None else iter_list_items(path, typed=typed)
    index = 0
    while True:
        t0 = clock()
        item = next(items, None)
        if item is None:
            break
        t1 = clock()
        if type(item) is Nsg:  # decoded and parsed by the typed reader: its build time counts as parse below
            checker.check_parsed(path, index, item)
        else:
            checker.check_item(path, index, item)
        index += 1
        t2 = clock()
        nsg = item if type(item) is Nsg else parse_nsg(item)
        t3 = clock()
        evaluation = engine.evaluate(nsg)
        t4 = clock()
        evaluation = apply_exemptions(evaluation, args.exempt_tag, now, context)
        attachment = attachment_of(nsg)
        t5 = clock()
        if evaluation.findings:
            fastjson.dumps([finding_json(f, attachment) for f in evaluation.findings])
        t6 = clock()
        for k, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6))):
            spent[k] += b - a
    if typed is not None:  # the reader's time includes the typed build: move it to parse
        spent[0] -= built[0]
        spent[2] += built[0]
    if best is None or sum(spent) < sum(best):
        best = spent
print(json.dumps(best))
"""
STAGES = ("decode", "check", "parse", "evaluate", "exemptions", "encode")


def write_estate(path: Path, nsgs: int, rules: int, seed: int, shape: str = "list") -> None:
    """One JSON list of NSGs (the shape of ``az network nsg list``), written without holding it all twice;
    ``shape`` "value" wraps it as an ARM page (``{"value": [...], "nextLink": null}``), "data" as a Resource
    Graph response (``{"totalRecords": N, "count": N, "data": [...], "resultTruncated": "false"}``)."""
    with path.open("w", encoding="utf-8") as f:
        if shape == "data":
            f.write(f'{{"totalRecords": {nsgs}, "count": {nsgs}, "data": ')
        elif shape == "value":
            f.write('{"value": ')
        f.write("[")
        for i, text in enumerate(documents(nsgs, rules, seed)):
            f.write(("," if i else "") + text)
        f.write("]")
        if shape == "data":
            f.write(', "resultTruncated": "false"}')
        elif shape == "value":
            f.write(', "nextLink": null}')


def run_scan(tree: Path, estate: Path, out: Path) -> dict:
    with out.open("w") as stdout:
        proc = subprocess.run([sys.executable, "-c", CHILD, "scan", str(estate), "--format", "json"], cwd=tree,
                              stdout=stdout, stderr=subprocess.PIPE, text=True, check=False)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("RUSAGE "))
    return json.loads(line[len("RUSAGE "):])


def _estate_and_previous(args: argparse.Namespace, tmpdir: Path) -> tuple[Path, Path]:
    """The generated estate file and the ``--previous`` tree (``git archive``) in ``tmpdir``."""
    estate = tmpdir / "estate.json"
    write_estate(estate, args.nsgs, args.rules, args.seed, args.shape)
    previous = tmpdir / "previous"
    previous.mkdir()
    archive = subprocess.run(["git", "archive", args.previous], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(previous)], input=archive.stdout, check=True)
    return estate, previous


def stages(args: argparse.Namespace) -> None:
    """CPU per stage of the scan loop (decode, checks, parse, evaluate, exemptions, encode), this tree and
    --previous (a ref that has the streaming reader, e.g. the start of this round), interleaved."""
    with tempfile.TemporaryDirectory(prefix="nsg-guard-bench-") as tmp:
        tmpdir = Path(tmp)
        estate, previous = _estate_and_previous(args, tmpdir)
        rules = args.nsgs * args.rules
        print(f"stages nsgs={args.nsgs} rules={rules} repeats={args.repeats} (in-process, collector paused, "
              "best total of each; us_per_rule of CPU)")
        best: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for label, tree in (("previous", previous), ("current", REPO)):
                proc = subprocess.run([sys.executable, "-c", STAGES_CHILD, str(estate), "1"], cwd=tree,
                                      capture_output=True, text=True, check=True)
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                if label not in best or sum(got) < sum(best[label]):
                    best[label] = got
        for label in ("previous", "current"):
            ref = args.previous if label == "previous" else "working tree"
            cells = " ".join(f"{name}={1e6 * sec / rules:.2f}" for name, sec in zip(STAGES, best[label], strict=True))
            print(f"stages version={label} ({ref}) {cells} total={1e6 * sum(best[label]) / rules:.2f}")


def end_to_end(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="nsg-guard-bench-") as tmp:
        tmpdir = Path(tmp)
        estate, previous = _estate_and_previous(args, tmpdir)
        rules = args.nsgs * args.rules
        print(f"end_to_end shape={args.shape} input_mb={estate.stat().st_size / 2**20:.0f} nsgs={args.nsgs} "
              f"rules={rules} repeats={args.repeats} (min of each)")
        best: dict[str, dict] = {}
        outputs: dict[str, Path] = {}
        for _ in range(args.repeats):
            for label, tree in (("previous", previous), ("current", REPO)):
                outputs[label] = tmpdir / f"{label}.json"
                got = run_scan(tree, estate, outputs[label])
                if label not in best or got["cpu"] < best[label]["cpu"]:
                    best[label] = got
        same = json.loads(outputs["previous"].read_text())["summary"] == \
            json.loads(outputs["current"].read_text())["summary"]
        for label in ("previous", "current"):
            b = best[label]
            ref = args.previous if label == "previous" else "working tree"
            print(f"end_to_end version={label} ({ref}) exit={b['code']} cpu_s={b['cpu']:.2f} wall_s={b['wall']:.2f} "
                  f"us_per_rule_cpu={1e6 * b['cpu'] / rules:.2f} us_per_rule_wall={1e6 * b['wall'] / rules:.2f} "
                  f"peak_rss_mb={b['rss_mb']:.0f} output_mb={outputs[label].stat().st_size / 2**20:.1f}")
        print(f"end_to_end current_over_previous_cpu={best['current']['cpu'] / best['previous']['cpu']:.2f} "
              f"same_summary={same}")


def linearity(args: argparse.Namespace) -> None:
    """Scan-like in-process run per size: decode, parse, evaluate, keep every evaluation, encode findings."""
    from shared.app import fastjson
    from shared.app.gcpolicy import batch_without_cyclic_gc

    sizes = [int(x) for x in args.sizes.split(",")]
    best: dict[int, float] = {}
    for round_ in range(args.rounds):  # sizes in turn, best of the rounds: the machine is shared
        for size in sizes:
            engine = Engine(Policy(watched=watched_ports(ssh_ports=(2222,))))
            stream = documents(args.warmup + size, args.rules, args.seed)
            for _, text in zip(range(args.warmup), stream, strict=False):  # fill the caches: steady state only
                engine.evaluate(parse_nsg(json.loads(text)))
            kept = []
            seconds = 0.0
            cm = batch_without_cyclic_gc() if args.gc == "paused" else contextlib.nullcontext()
            with cm:
                for text in stream:  # the next `size` NSGs of the same stream: none seen in the warm-up
                    t0 = time.process_time()  # CPU time: the development machine is shared
                    evaluation = engine.evaluate(parse_nsg(json.loads(text)))
                    fastjson.dumps([f.to_contract() for f in evaluation.findings])
                    seconds += time.process_time() - t0
                    if args.keep:
                        kept.append(evaluation)
            us = 1e6 * seconds / (size * args.rules)
            best[size] = min(best.get(size, us), us)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"linearity round={round_ + 1} gc={args.gc} keep={args.keep} nsgs={size} rules={size * args.rules} "
                  f"cpu_seconds={seconds:.2f} us_per_rule={us:.2f} peak_rss_mb={peak_mb:.0f}")
            del kept
    line = " ".join(f"nsgs_{size}={best[size]:.2f}" for size in sizes)
    print(f"linearity gc={args.gc} keep={args.keep} best_us_per_rule {line} spread_max_over_min="
          f"{max(best.values()) / min(best.values()):.3f}")


def codecs(args: argparse.Namespace) -> None:
    import gc

    import orjson

    text = "[" + ",".join(documents(args.nsgs, args.rules, args.seed)) + "]"
    data = json.loads(text)
    engine = Engine(Policy(watched=watched_ports(ssh_ports=(2222,))))
    findings = [f.to_contract() for d in data for f in engine.evaluate(parse_nsg(d)).findings]
    doc = {"findings": findings}
    cases = [("decode json.loads", lambda: json.loads(text)), ("decode orjson.loads", lambda: orjson.loads(text)),
             ("encode json.dumps(indent=2)", lambda: json.dumps(doc, indent=2)),
             ("encode json.dumps(compact)", lambda: json.dumps(doc, separators=(",", ":"))),
             ("encode orjson.dumps(indent=2)", lambda: orjson.dumps(doc, option=orjson.OPT_INDENT_2)),
             ("encode orjson.dumps(compact)", lambda: orjson.dumps(doc))]
    print(f"codecs input_mb={len(text) / 2**20:.0f} findings={len(findings)}")
    for collector in ("on", "paused"):
        for name, fn in cases:
            best = float("inf")
            for _ in range(3):
                if collector == "paused":
                    gc.disable()
                t0 = time.perf_counter()
                result = fn()
                best = min(best, time.perf_counter() - t0)
                gc.enable()
                del result
            print(f"codecs gc={collector} {name} seconds={best:.3f}")


def readers(args: argparse.Namespace) -> None:
    """The list reader of ``scan``: the standard library's decoder against msgspec, on one file, interleaved."""
    import gc

    from shared.app.jsonstream import _iter_list_items_json, _iter_list_items_msgspec

    cases = {"json (JSONDecoder.raw_decode)": _iter_list_items_json,
             "msgspec (Raw skip + decode)": _iter_list_items_msgspec}
    with tempfile.TemporaryDirectory(prefix="nsg-guard-bench-") as tmp:
        estate = Path(tmp) / "estate.json"
        write_estate(estate, args.nsgs, args.rules, args.seed)
        rules = args.nsgs * args.rules
        print(f"readers input_mb={estate.stat().st_size / 2**20:.0f} nsgs={args.nsgs} rules={rules} "
              f"repeats={args.repeats} (min of each, collector paused as in scan)")
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, read in cases.items():
                gc.disable()
                t0 = time.process_time()
                for _item in read(estate):
                    pass
                seconds = time.process_time() - t0
                gc.enable()
                best[name] = min(best.get(name, seconds), seconds)
        for name, seconds in best.items():
            print(f"readers reader={name} cpu_s={seconds:.3f} us_per_rule={1e6 * seconds / rules:.2f}")
        names = list(best)
        print(f"readers msgspec_over_json={best[names[1]] / best[names[0]]:.2f}")
    # The decoders alone, one NSG document at a time (the same documents, already in memory).
    import msgspec
    import orjson

    texts = list(documents(args.nsgs, args.rules, args.seed))
    data = [t.encode() for t in texts]
    decoders = [("json.loads", json.loads, texts), ("msgspec.json.decode", msgspec.json.Decoder().decode, data),
                ("orjson.loads", orjson.loads, data), ("msgspec Raw skip", msgspec.json.Decoder(msgspec.Raw).decode,
                                                       data)]
    for name, decode, inputs in decoders:
        best_s = float("inf")
        for _ in range(args.repeats):
            gc.disable()
            t0 = time.process_time()
            for doc in inputs:
                decode(doc)
            best_s = min(best_s, time.process_time() - t0)
            gc.enable()
        print(f"readers per_document decoder={name} us_per_rule={1e6 * best_s / rules:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsgs", type=int, default=50_000)
    parser.add_argument("--rules", type=int, default=20, help="rules per NSG")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-to-end", action="store_true", help="whole-process scan, this tree vs --previous")
    parser.add_argument("--previous", default=PREVIOUS_REF, help="git ref to compare with (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shape", choices=("list", "value", "data"), default="list",
                        help="end-to-end input: a list, an ARM page or a Resource Graph response")
    parser.add_argument("--linearity", action="store_true", help="us/rule at --sizes, evaluations kept")
    parser.add_argument("--sizes", default="2000,20000,100000")
    parser.add_argument("--gc", choices=("paused", "default"), default="paused")
    parser.add_argument("--warmup", type=int, default=2000, help="NSGs evaluated before timing (linearity)")
    parser.add_argument("--rounds", type=int, default=3, help="linearity: rounds over the sizes, best kept")
    parser.add_argument("--keep", action="store_true",
                        help="linearity: keep every evaluation (scan --format table/sarif/--indent); the default "
                             "streams like scan --format json piped")
    parser.add_argument("--codecs", action="store_true", help="json vs orjson, decode and encode")
    parser.add_argument("--readers", action="store_true", help="scan's list reader: json vs msgspec")
    parser.add_argument("--stages", action="store_true",
                        help="CPU per stage of the scan loop, this tree vs --previous (a ref with the streaming "
                             "reader, e.g. 69279d5)")
    args = parser.parse_args()
    if args.end_to_end:
        return end_to_end(args)
    if args.linearity:
        return linearity(args)
    if args.codecs:
        return codecs(args)
    if args.readers:
        return readers(args)
    if args.stages:
        return stages(args)

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
