"""The README is the front door: short, and every sample and command in it is real (issue 13).

The scan sample is the command's exact output, the demo sample's lines come from a real demo run (ids and
timings aside), and every fenced ``nsg-guard`` example runs as written.
"""

import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

README = Path("README.md").read_text()


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= 250
    for heading in ("## Two commands", "## Scan NSG files", "## Semantics", "## Where to go next"):
        assert heading in README


def test_readme_scan_sample_matches_the_command():
    block = re.search(r"```text\n\$ nsg-guard scan (examples/estate\.json --ssh-ports 2222)\n(.*?)```", README,
                      re.S)
    assert block, "sample block missing from README"
    proc = subprocess.run([sys.executable, "-m", "shared", "scan", *block.group(1).split(), "--color", "never"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stdout == block.group(2)


def _normalise(line: str) -> str:
    line = re.sub(r"^\d\d:\d\d:\d\d\.\d{3} \+\s*\d+ ms  ", "", line)
    line = re.sub(r"\(event [0-9a-f]{8}\)", "(event X)", line)
    line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)  # the demo's stand-in sshd listener
    return re.sub(r"closed \d+ ms after", "closed N ms after", line)


def test_readme_demo_sample_is_what_the_demo_prints(tmp_path):
    from localazure.demo import run_demo

    block = re.search(r"```text\n(\d\d:\d\d.*?)```", README, re.S)
    assert block, "demo sample missing from README"
    out = io.StringIO()
    assert run_demo(str(tmp_path), out) == 0
    real = [_normalise(line) for line in out.getvalue().splitlines()]
    sample = [line for line in block.group(1).splitlines() if re.match(r"\d\d:\d\d:\d\d", line)]
    assert len(sample) >= 8
    position = 0
    for line in sample:  # every line, in order, cut lines compared up to the cut
        want = _normalise(line).removesuffix("…")
        hits = [i for i in range(position, len(real)) if real[i].startswith(want)]
        assert hits, f"not in the demo's output (in this order): {line}"
        position = hits[0] + 1
    assert block.group(1).rstrip().splitlines()[-1] in out.getvalue()


def _examples() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        commands += [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("nsg-guard ")]
    return commands


def test_readme_nsg_guard_examples_run_as_written(tmp_path):
    commands = _examples()
    assert len(commands) >= 5
    shutil.copytree("examples", tmp_path / "examples")
    prefix = f"{shlex.quote(sys.executable)} -m shared"
    env_path = str(Path.cwd())
    for command in commands:
        proc = subprocess.run(prefix + command[len("nsg-guard"):], shell=True, cwd=tmp_path, capture_output=True,
                              text=True, check=False, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
                              timeout=120)
        assert proc.returncode in (0, 1), f"{command}: exit {proc.returncode}: {proc.stderr[-500:]}"
        assert "Traceback" not in proc.stderr and "error:" not in proc.stderr, command
    assert (tmp_path / "nsg-guard.sarif").stat().st_size > 1000


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if target.startswith("http"):
            continue
        assert Path(target).exists(), target


def test_readme_quick_start_targets_exist():
    makefile = Path("Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
