"""The README's sample output is the real output: documentation that cannot drift."""

import re
import subprocess
import sys
from pathlib import Path

README = Path("README.md").read_text()


def test_readme_scan_sample_matches_the_command():
    block = re.search(r"```text\n\$ nsg-guard scan (examples/estate\.json --ssh-ports 2222)\n(.*?)```", README,
                      re.S)
    assert block, "sample block missing from README"
    proc = subprocess.run([sys.executable, "-m", "shared", "scan", *block.group(1).split(), "--color", "never"],
                          capture_output=True, text=True, check=False)
    assert proc.stdout.startswith(block.group(2))


def test_readme_quick_start_targets_exist():
    makefile = Path("Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
