"""Blast radius per run (REVERT_MAX_NSGS_PER_RUN): the pure selection, its setting and ``nsg-guard remediate``."""

from __future__ import annotations

import json
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.app.config import Settings
from shared.cli import main
from shared.core.blastradius import DEFAULT_MAX_NSGS_PER_RUN, SKIP_HELD, Candidate, select
from shared.core.errors import ConfigError
from shared.core.model import parse_nsg
from shared.core.policy import SEVERITY_ORDER, Engine, Policy, watched_ports
from tests.nsgfactory import nsg, nsg_id, rule

ENGINE = Engine(Policy(watched=watched_ports((2222,), (3389,))))


def findings(name: str, *rules: dict) -> tuple:
    """The active findings of an NSG made of ``rules`` (real engine: real severities)."""
    evaluation = ENGINE.evaluate(parse_nsg(nsg(list(rules), name=name)))
    return tuple(f for f in evaluation.findings if f.active)


SSH_ANY = rule("AllowSSH", 300, "22", "*")  # ssh, internet: high
RDP_ANY = rule("AllowRDP", 310, "3389", "*")  # management, internet: high
CUSTOM_ANY = rule("AllowCustom", 320, "2222", "*")  # ssh-custom, internet: medium
SSH_BROAD = rule("AllowSSHWide", 330, "22", "20.0.0.0/8")  # ssh, broad: medium


def cand(name: str, *rules: dict, severity: str | None = None) -> Candidate:
    fs = findings(name, *rules)
    if severity is not None:  # effective exposure made it critical (a public NIC behind the NSG)
        from dataclasses import replace

        fs = tuple(replace(f, severity=severity) for f in fs)
    return Candidate(nsg_id(name), fs)


# --- the selection, table-driven ------------------------------------------------------------------------

CASES = [  # (candidates, cap, expected taken names, expected held names)
    pytest.param([], 3, [], [], id="nothing-to-revert"),
    pytest.param([("a", [SSH_ANY])], 1, ["a"], [], id="exactly-the-cap"),
    pytest.param([("a", [SSH_ANY]), ("b", [SSH_ANY]), ("c", [SSH_ANY])], 2, ["a", "b"], ["c"],
                 id="same-severity-by-nsg-id"),
    pytest.param([("a", [CUSTOM_ANY]), ("b", [CUSTOM_ANY]), ("c", [SSH_ANY]), ("d", [SSH_ANY])], 2, ["c", "d"],
                 ["a", "b"], id="internet-ssh-before-custom-ssh-whatever-the-names"),
    pytest.param([("a", [SSH_BROAD]), ("z", [SSH_ANY])], 1, ["z"], ["a"], id="internet-before-broad"),
    pytest.param([("a", [SSH_ANY]), ("b", [SSH_ANY, RDP_ANY])], 1, ["b"], ["a"], id="more-targets-first-on-a-tie"),
    pytest.param([("a", [SSH_ANY]), ("y", [CUSTOM_ANY], "critical")], 1, ["y"], ["a"],
                 id="critical-reachable-first"),
    pytest.param([("a", [SSH_ANY]), ("b", [SSH_ANY])], 5, ["a", "b"], [], id="cap-above-candidates"),
    pytest.param([("a", [SSH_ANY]), ("b", [SSH_ANY])], 0, [], ["a", "b"], id="cap-zero-holds-all"),
]


@pytest.mark.parametrize(("spec", "cap", "taken", "held"), CASES)
def test_selection_takes_the_worst_first(spec, cap, taken, held):
    cands = [cand(name, *rules, severity=sev[0] if sev else None) for name, rules, *sev in spec]
    for order in list(permutations(cands))[:24]:  # input order never matters
        s = select(order, cap)
        assert [c.nsg_id for c in s.taken] == [nsg_id(n) for n in taken]
        assert [c.nsg_id for c in s.held] == [nsg_id(n) for n in held]
        assert s.to_json() == {"candidates": len(cands), "taken": len(taken), "held": len(held), "maxNsgsPerRun": cap}


def test_one_nsg_is_one_candidate_even_when_listed_twice():
    a_mild, a_bad = cand("a", CUSTOM_ANY), cand("a", SSH_ANY)
    s = select([a_mild, cand("b", SSH_ANY), a_bad], 1)
    assert [c.nsg_id for c in s.taken] == [nsg_id("a")] and s.taken[0] is a_bad and s.total == 2


def test_negative_cap_is_a_bug_not_a_silent_empty_run():
    with pytest.raises(ValueError):
        select([], -1)


def test_held_reason_names_the_setting_and_the_next_run():
    s = select([cand("a", SSH_ANY), cand("b", SSH_ANY)], 1)
    assert "REVERT_MAX_NSGS_PER_RUN" in s.reason() and "next run" in s.reason() and "2 NSGs" in s.reason()


@given(st.lists(st.tuples(st.sampled_from(sorted(SEVERITY_ORDER)), st.integers(1, 3), st.integers(0, 40)),
                max_size=30),
       st.integers(0, 35))
def test_selection_matches_a_brute_force_reference(specs, cap):
    """Property: taken = the cap best by (severity, count, id), held = the rest; nothing is lost or doubled."""
    base = findings("x", SSH_ANY)[0]
    from dataclasses import replace

    cands = [Candidate(nsg_id(f"n{i:03d}"), tuple(replace(base, severity=sev) for _ in range(n)))
             for sev, n, i in specs]
    s = select(cands, cap)
    unique = {c.nsg_id.lower(): c for c in sorted(cands, key=lambda c: c.rank, reverse=True)}  # best kept
    ranked = sorted(unique.values(), key=lambda c: (-SEVERITY_ORDER[c.severity], -len(c.findings), c.nsg_id))
    assert [c.nsg_id for c in s.taken] == [c.nsg_id for c in ranked[:cap]]
    assert [c.nsg_id for c in s.held] == [c.nsg_id for c in ranked[cap:]]
    assert {c.nsg_id for c in s.taken} | {c.nsg_id for c in s.held} == {c.nsg_id for c in cands}
    worst_held = max((SEVERITY_ORDER[c.severity] for c in s.held), default=-1)
    assert all(SEVERITY_ORDER[c.severity] >= worst_held for c in s.taken)  # the cap never delays a worse one


# --- the setting -----------------------------------------------------------------------------------------

def test_default_cap_is_25():
    assert Settings.from_env({}).revert_max_nsgs_per_run == DEFAULT_MAX_NSGS_PER_RUN == 25
    assert Settings.from_env({"REVERT_MAX_NSGS_PER_RUN": " 7 "}).revert_max_nsgs_per_run == 7


@pytest.mark.parametrize("value", ["0", "-1", "ten", "2.5", "10001", "1e3", "²", "25 NSGs"])
def test_bad_cap_is_a_clear_config_error(value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REVERT_MAX_NSGS_PER_RUN": value})
    message = str(info.value)
    assert f"REVERT_MAX_NSGS_PER_RUN={value.strip()!r}" in message and "from 1 to 10000" in message
    assert "REVERT_MODE=dry-run" in message  # what to do instead of 0


def test_reverter_config_carries_the_cap():
    from shared.app.revert import RevertConfig

    settings = Settings.from_env({"REVERT_MAX_NSGS_PER_RUN": "3", "REVERT_MODE": "dry-run"})
    assert RevertConfig.from_settings(settings).max_nsgs_per_run == 3


# --- nsg-guard remediate -----------------------------------------------------------------------------------

def estate(tmp_path, n_custom: int, n_ssh: int) -> str:
    """``n_custom`` NSGs opening 2222 (medium) named before ``n_ssh`` NSGs opening 22 (high), plus a clean one."""
    docs = [nsg([rule("AllowCustom", 300, "2222", "*", nsg=f"a{i}")], name=f"a{i}") for i in range(n_custom)]
    docs += [nsg([rule("AllowSSH", 300, "22", "*", nsg=f"b{i}")], name=f"b{i}") for i in range(n_ssh)]
    docs.append(nsg([rule("AllowSSHVpn", 300, "22", "10.0.0.0/8", nsg="clean")], name="clean"))
    path = tmp_path / "estate.json"
    path.write_text(json.dumps(docs))
    return str(path)


KINDS = ["--ssh-ports", "2222", "--revert-kinds", "ssh,ssh-custom"]


def test_remediate_plans_at_most_the_cap_worst_first_and_lists_the_rest_as_held(tmp_path, capsys):
    path = estate(tmp_path, n_custom=2, n_ssh=3)
    assert main(["remediate", path, "--dry-run", "--format", "json", "--max-nsgs", "3", *KINDS]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["nsgName"] for p in doc["plans"]] == ["b0", "b1", "b2"]  # the high ones, not the first named
    assert [(h["nsgName"], h["queuePosition"], h["heldBy"], h["severity"]) for h in doc["held"]] == \
        [("a0", 1, SKIP_HELD, "medium"), ("a1", 2, SKIP_HELD, "medium")]
    assert all(h["actions"] and "REVERT_MAX_NSGS_PER_RUN" in h["reason"] for h in doc["held"])  # nothing lost
    assert doc["blastRadius"] == {"candidates": 5, "taken": 3, "held": 2, "maxNsgsPerRun": 3}


def test_remediate_default_cap_is_the_apps(tmp_path, capsys):
    path = estate(tmp_path, n_custom=0, n_ssh=DEFAULT_MAX_NSGS_PER_RUN + 2)
    assert main(["remediate", path, "--dry-run", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["plans"]) == DEFAULT_MAX_NSGS_PER_RUN and len(doc["held"]) == 2


def test_remediate_table_says_which_nsgs_are_held(tmp_path, capsys):
    path = estate(tmp_path, n_custom=1, n_ssh=1)
    assert main(["remediate", path, "--dry-run", "--max-nsgs", "1", *KINDS]) == 0
    out = capsys.readouterr().out
    assert "HELD   #1 (medium, 1 write(s)): held by the blast-radius cap" in out
    assert out.index("b0") < out.index("HELD")


def test_remediate_plans_that_write_nothing_do_not_use_the_cap(tmp_path, capsys):
    docs = [nsg([rule("AllowSSH", 100, "22", "*", nsg="top")], name="top"),  # priority 100: no safe change
            nsg([rule("AllowSSH", 300, "22", "*", nsg="b0")], name="b0")]
    path = tmp_path / "n.json"
    path.write_text(json.dumps(docs))
    assert main(["remediate", str(path), "--dry-run", "--format", "json", "--max-nsgs", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["nsgName"] for p in doc["plans"]] == ["top", "b0"] and doc["held"] == []
    assert doc["plans"][0]["actions"] == [] and doc["plans"][0]["skipped"]


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_remediate_bad_max_nsgs_exits_2_with_one_line(tmp_path, capsys, value):
    path = estate(tmp_path, n_custom=0, n_ssh=1)
    assert main(["remediate", path, "--dry-run", f"--max-nsgs={value}"]) == 2
    err = capsys.readouterr().err
    assert "--max-nsgs" in err and "from 1 to 10000" in err and "Traceback" not in err


# --- the rolling window of revert jobs (pure part) ---------------------------------------------------------

from datetime import UTC, datetime, timedelta  # noqa: E402

from shared.core.blastradius import nsg_key, take, window_from_json, window_to_json  # noqa: E402
from shared.core.errors import InputError  # noqa: E402

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ago(**kw) -> datetime:
    return T0 - timedelta(**kw)


WINDOW_CASES = [  # (slots: name -> time, NSG asking, cap, granted, retry_at, stored names)
    pytest.param({}, "a", 1, True, None, {"a"}, id="empty-window"),
    pytest.param({"a": ago(minutes=5)}, "b", 2, True, None, {"a", "b"}, id="room-left"),
    pytest.param({"a": ago(minutes=5), "b": ago(minutes=50)}, "c", 2, False, ago(minutes=50) + HOUR, {"a", "b"},
                 id="full-held-until-the-oldest-frees"),
    pytest.param({"a": ago(minutes=5)}, "a", 1, True, None, {"a"}, id="same-nsg-counted-once"),
    pytest.param({"a": ago(minutes=61), "b": ago(minutes=5)}, "c", 2, True, None, {"b", "c"},
                 id="expired-slots-free-room"),
    pytest.param({"a": ago(minutes=60)}, "b", 1, True, None, {"b"}, id="exactly-a-window-old-is-expired"),
    pytest.param({"a": T0 + timedelta(days=30)}, "b", 1, False, T0 + HOUR, {"a"},
                 id="future-stamp-counts-as-now-never-for-ever"),
]


@pytest.mark.parametrize(("slots", "asking", "cap", "granted", "retry_at", "stored"), WINDOW_CASES)
def test_window_take(slots, asking, cap, granted, retry_at, stored):
    entries = {nsg_key(nsg_id(n)): t for n, t in slots.items()}
    slot = take(entries, nsg_id(asking), T0, cap, HOUR)
    assert (slot.granted, slot.retry_at) == (granted, retry_at)
    assert set(slot.entries) == {nsg_key(nsg_id(n)) for n in stored}
    assert all(t <= T0 for t in slot.entries.values())  # stored back clamped: a future stamp expires in time


def test_nsg_key_ignores_case_and_whitespace():
    assert nsg_key(nsg_id("A").upper() + " ") == nsg_key(nsg_id("A").lower())


def test_window_round_trips():
    entries = {nsg_key(nsg_id("a")): T0, nsg_key(nsg_id("b")): ago(minutes=3)}
    assert window_from_json(window_to_json(entries)) == entries
    assert window_from_json(b"") == {}


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "not JSON"), (b"[]", "no slots"), (b'{"slots": 3}', "no slots"),
    (b'{"slots": {"k": "yesterday"}}', "ISO 8601"), (b'{"slots": {"k": null}}', "ISO 8601"),
])
def test_damaged_window_is_an_input_error(body, message):
    with pytest.raises(InputError, match=message):
        window_from_json(body)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("REVERT_MAX_NSGS_PER_WINDOW", "0", "NSGs per window from 1 to 10000"),
    ("REVERT_MAX_NSGS_PER_WINDOW", "lots", "NSGs per window from 1 to 10000"),
    ("REVERT_WINDOW_SECONDS", "0", "seconds from 1 to 604740"),
    ("REVERT_WINDOW_SECONDS", "604800", "seconds from 1 to 604740"),
    ("REVERT_WINDOW_SECONDS", "1h", "seconds from 1 to 604740"),
])
def test_bad_window_settings_are_clear_config_errors(name, value, message):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert f"{name}='{value}': expected" in str(info.value) and message in str(info.value)


def test_window_defaults():
    s = Settings.from_env({})
    assert (s.revert_max_nsgs_per_window, s.revert_window_seconds) == (100, 3600)
