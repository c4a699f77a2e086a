"""Output a person can use (issue 13): the table ends with the summary, lists at most N NSGs per severity
with "and K more", reasons only with --explain; progress on stderr only when it is a terminal."""

from __future__ import annotations

import io
import json
import sys

from shared.app.progress import Progress
from shared.cli import main
from tests.nsgfactory import nsg, rule


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def estate(tmp_path, n: int):
    nsgs = [nsg([rule("AllowSSH", 300, "22", "*", nsg=f"gpu-{i:03d}")], name=f"gpu-{i:03d}", defaults=False)
            for i in range(n)]
    nsgs += [nsg([rule("AllowRDP", 300, "3389", "AzureCloud", nsg=f"rdp-{i}")], name=f"rdp-{i}", defaults=False)
             for i in range(3)]
    path = tmp_path / "large.json"
    path.write_text(json.dumps(nsgs))
    return path


def test_large_estate_table_is_capped_per_severity_and_ends_with_the_summary(tmp_path, capsys):
    path = estate(tmp_path, 60)
    assert main(["scan", str(path), "--color", "never", "--limit", "5"]) == 1
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-1] == "63 NSGs, 0 compliant (0.0%), 63 findings (60 high, 3 medium)"
    body = [line for line in lines if line.startswith(("high", "medium"))]
    assert len([b for b in body if b.startswith("high")]) == 5 and len([b for b in body if b.startswith("medium")]) == 3
    assert "... and 55 more NSGs with high findings" in "\n".join(lines)
    (listed,) = [line for line in lines if line.startswith("Not compliant: ")]
    assert listed.endswith("and 58 more") and listed.count(",") == 4
    assert not any(line.startswith("- [high]") for line in lines)


def test_limit_zero_lists_everything_and_explain_adds_the_reasons(tmp_path, capsys):
    path = estate(tmp_path, 30)
    assert main(["scan", str(path), "--color", "never", "--limit", "0", "--explain"]) == 1
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert len([line for line in lines if line.startswith("high ")]) == 30 and "more NSGs" not in "\n".join(lines)
    assert len([line for line in lines if line.startswith("- [high] gpu-")]) == 30
    assert lines[-1].startswith("33 NSGs, 0 compliant")


def test_progress_on_a_terminal_shows_count_and_rate(tmp_path, monkeypatch, capsys):
    path = estate(tmp_path, 10)
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["scan", str(path), "--format", "json"]) == 1
    text = tty.getvalue()
    assert "13 NSGs scanned (" in text and "/s)" in text and text.endswith("\n")
    assert json.loads(capsys.readouterr().out)["summary"]["nsgs"] == 13


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path, capsys):
    path = estate(tmp_path, 10)
    assert main(["scan", str(path), "--format", "json"]) == 1
    assert capsys.readouterr().err == ""


def test_progress_is_throttled():
    now = [0.0]
    stream = Tty()
    p = Progress("rows", stream=stream, clock=lambda: now[0], interval=1.0)
    for _ in range(1000):
        p.advance()
    assert stream.getvalue().count("\r") == 1
    now[0] = 2.0
    p.advance()
    p.done()
    assert "1001 rows (500/s)" in stream.getvalue()


def test_sweep_local_shows_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["sweep", "--local", "examples/estate.json", "--local-rows", str(tmp_path), "--json"]) == 0
    assert "10 NSGs swept (" in tty.getvalue()
    assert json.loads(capsys.readouterr().out)["nsgs"] == 10
