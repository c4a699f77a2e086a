"""A clone with nothing beside it passes ``make test`` (issue 13): nothing reads outside the checkout.

``.ci/run`` proves it by running the suite from a copy in an empty temp dir; this test keeps the cheap half
of that proof in every ``make test``: no tracked file names a path outside the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The sibling directory the samples used to be read from, and absolute home/work paths (spelled with a
# character class so this line does not match itself).
OUTSIDE = re.compile(r"[.][.]/shared/(?:azure-reference|docs)|/wor[k]/|/hom[e]/[a-z]")


def tracked(suffixes: tuple[str, ...]) -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / line for line in out.splitlines() if line.endswith(suffixes) and (REPO / line).is_file()]


def test_no_code_or_test_reads_outside_the_checkout():
    offenders = []
    for path in tracked((".py", ".sh", "Makefile", ".toml", ".cfg", ".ini")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
            for m in re.finditer(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]", line):
                if not (path.resolve().parents[int(m.group(1))]).is_relative_to(REPO):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: climbs above the repository")
    assert offenders == []


def test_ci_runs_the_suite_from_an_isolated_copy():
    ci = (REPO / ".ci" / "run").read_text()
    assert 'isolated="$(mktemp -d)/nsg-guard"' in ci and '(cd "$isolated" && make test)' in ci
    assert 'git clone --quiet --no-local "$PWD" "$isolated"' in ci


def test_reference_samples_the_tests_need_are_in_the_repo():
    samples = REPO / "tests" / "fixtures" / "azure-reference"
    assert (samples / "arm-nsg-get.json").is_file() and (samples / "eventgrid-rule-write.json").is_file()
