"""function_app stays a thin routing table that is cheap to import on a cold start."""

import subprocess
import sys


def test_import_loads_no_sdk_and_no_domain_code():
    code = ("import sys, function_app; print(sorted(m for m in sys.modules if m.startswith(('azure.mgmt', "
            "'azure.monitor', 'azure.identity', 'azure.storage', 'azure.core', 'shared', 'localazure'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_event_grid_trigger_binding():
    from localazure.functions import indexed

    bindings = indexed()["on_nsg_change"].get_bindings_dict()["bindings"]
    assert [(b["type"], b["name"]) for b in bindings] == [("eventGridTrigger", "event")]


def test_installed_command_finds_the_function_app_outside_the_checkout(tmp_path):
    """`nsg-guard demo` runs the Functions: the installed package must import function_app from anywhere."""
    import os
    import shutil

    exe = shutil.which("nsg-guard", path=os.path.dirname(sys.executable))
    assert exe, "the nsg-guard console script is not installed in this environment (pip install -e .)"
    code = "import function_app, shared.azure.wiring, localazure.demo; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "ok", out.stderr
