"""Issue 12.11: alert queries count every row exactly once, although rows become queryable late.

A model of how a scheduled log alert sees the table: runs every `evaluationFrequency` (alerts.bicep) with a
few seconds of jitter; a row with ingestion time i is queryable only from i + d (ingestion delay d, up to 5
minutes here). The window each run applies is read from the query text; every row must be counted by exactly
one run. The old `ingestion_time() > ago(5m)` dropped rows that were ingested just before a run but queryable
just after it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALERTS = ["alert_new_high_critical.kql", "alert_revert_failed.kql", "alert_sweep_failed.kql"]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ISO = {"M": 60, "H": 3600, "D": 86400}


def seconds(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1]]


def iso_seconds(text: str) -> int:
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", text)
    assert m, text
    d, h, mi = (int(x or 0) for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60


def rule_settings(kql: str) -> dict[str, int]:
    text = (REPO / "infra" / "modules" / "alerts.bicep").read_text()
    block = text[: text.index(f"queries/{kql}")]
    block = block[block.rindex("{"):]
    return {k: iso_seconds(re.search(rf"{k}: '([^']+)'", block).group(1))
            for k in ("evaluationFrequency", "overrideQueryTimeRange")}


def window(kql: str):
    """The run-time -> (start, end, inclusive_end) function the query applies to ingestion_time()."""
    text = (REPO / "queries" / kql).read_text()
    lets = dict(re.findall(r"^let (frequency|lag) = (\d+[smhd]);", text, re.M))
    if "windowStart" in text:
        assert "bin(now() - lag, frequency)" in text and "windowStart = windowEnd - frequency" in text
        assert "ingestion_time() >= windowStart and ingestion_time() < windowEnd" in text
        freq, lag = seconds(lets["frequency"]), seconds(lets["lag"])

        def lagged(t: float) -> tuple[float, float, bool]:
            end = (t - lag) // freq * freq
            return end - freq, end, False
        return lagged, freq, lag
    m = re.search(r"ingestion_time\(\) > ago\((\d+[smhd])\)", text)
    assert m, f"{kql}: no window found"
    span = seconds(m.group(1))
    return (lambda t: (t - span, t, True)), span, 0


@pytest.mark.parametrize("kql", ALERTS)
@pytest.mark.parametrize("phase", [17, 131, 250])
def test_each_row_is_counted_by_exactly_one_run(kql, phase):
    of, freq, lag = window(kql)
    rule = rule_settings(kql)
    assert rule["evaluationFrequency"] == freq  # the query's window tiles time only at the rule's frequency
    assert rule["overrideQueryTimeRange"] >= 2 * freq + lag  # the TimeGenerated range covers the window
    rng = random.Random(phase)
    rows = [(rng.uniform(3600, 3600 * 9), rng.uniform(0, 300)) for _ in range(3000)]  # (ingested, delay)
    runs = [phase + k * freq + rng.uniform(0, 5) for k in range(int(3600 * 12 / freq))]
    counted = {i: 0 for i in range(len(rows))}
    for t in runs:
        start, end, inclusive = of(t)
        for i, (ingested, delay) in enumerate(rows):
            visible = ingested + delay <= t
            inside = start < ingested <= end if inclusive else start <= ingested < end
            if visible and inside:
                counted[i] += 1
    dropped = sum(1 for c in counted.values() if c == 0)
    twice = sum(1 for c in counted.values() if c > 1)
    assert (dropped, twice) == (0, 0)
