"""Settings: defaults, validation that names the variable, and the local mode's loopback-only rule."""

import json
from pathlib import Path

import pytest

from shared.app.config import Settings
from shared.core.errors import ConfigError


def test_defaults_are_safe():
    s = Settings.from_env({})
    assert (s.auth, s.revert_mode, s.revert_port_kinds, s.management_ports) == \
        ("managed-identity", "off", ("ssh",), (3389, 5985, 5986, 23))
    assert [(w.port, w.kind) for w in s.policy.watched][:1] == [(22, "ssh")]


@pytest.mark.parametrize(("env", "message"), [
    ({"NSG_GUARD_AUTH": "password"}, "NSG_GUARD_AUTH='password'"),
    ({"REVERT_MODE": "yes"}, "REVERT_MODE='yes'"),
    ({"REVERT_MAX_CHANGES": "-1"}, "REVERT_MAX_CHANGES='-1'"),
    ({"SSH_PORTS": "22"}, "port 22 is always watched"),
    ({"SSH_PORTS": "3389"}, "listed both"),
    ({"MANAGEMENT_PORTS": "rdp"}, "MANAGEMENT_PORTS: 'rdp' is not a port number"),
    ({"REVERT_PORT_KINDS": "ssh,telnet"}, "'telnet' is not one of"),
    ({"EXTRA_PRIVATE_RANGES": "10.0.0.0/99"}, "EXTRA_PRIVATE_RANGES"),
    ({"LOGS_INGESTION_ENDPOINT": "ftp://x"}, "LOGS_INGESTION_ENDPOINT='ftp://x'"),
    ({"SDK_RETRY_BACKOFF": "fast"}, "SDK_RETRY_BACKOFF='fast'"),
    ({"OWNER_TAG": "has space"}, "OWNER_TAG='has space'"),
    ({"NSG_GUARD_AUTH": "local"}, "needs NSG_GUARD_LOCAL_TOKEN"),
    ({"NSG_GUARD_AUTH": "local", "NSG_GUARD_LOCAL_TOKEN": "t", "ARM_ENDPOINT": "https://management.azure.com"},
     "only talks to loopback"),
    ({"NSG_GUARD_LOCAL_TOKEN": "t"}, "only for NSG_GUARD_AUTH=local"),
])
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REVERT_MODE": "x", "SSH_PORTS": "abc"})
    assert "REVERT_MODE" in str(info.value) and "SSH_PORTS" in str(info.value)


def test_ingestion_settings_are_required_before_use():
    with pytest.raises(ConfigError, match="LOGS_INGESTION_ENDPOINT, LOGS_DCR_IMMUTABLE_ID"):
        Settings.from_env({}).require_ingestion()


def test_example_settings_file_is_valid():
    values = json.loads(Path("local.settings.json.example").read_text())["Values"]
    s = Settings.from_env({k: v for k, v in values.items() if v and "<" not in v})
    assert s.ssh_ports == (2222,) and s.auth == "default"


def test_every_setting_the_code_reads_is_documented_in_the_readme():
    import re

    source = "".join(Path(p).read_text() for p in ("shared/app/config.py",))
    names = set(re.findall(r'(?:get|choice|ports|integer|csv|url)\("([A-Z][A-Z0-9_]+)"', source))
    readme = "\n".join(p.read_text() for p in (Path("README.md"), *sorted(Path("docs").glob("*.md"))))
    assert len(names) > 20
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == []
