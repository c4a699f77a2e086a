"""Check the deployment parameters from the azd environment with the app's own settings parser.

The same rules as the running app (shared/app/config.py): a port list the app would refuse fails here, before
anything is deployed, with the app's one-line message. Empty entries ("2222,") are dropped, like in Bicep.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.getcwd())

from shared.app.config import Settings
from shared.core.errors import ConfigError

#: azd environment variable -> app setting it becomes (infra/main.parameters.json -> infra/main.bicep)
PARAMS = {
    "NSG_GUARD_SSH_PORTS": "SSH_PORTS",
    "NSG_GUARD_MANAGEMENT_PORTS": "MANAGEMENT_PORTS",
    "NSG_GUARD_REVERT_MODE": "REVERT_MODE",
    "NSG_GUARD_REVERT_MAX_CHANGES": "REVERT_MAX_CHANGES",
    "NSG_GUARD_REVERT_MAX_NSGS_PER_RUN": "REVERT_MAX_NSGS_PER_RUN",
    "NSG_GUARD_REVERT_MAX_NSGS_PER_WINDOW": "REVERT_MAX_NSGS_PER_WINDOW",
    "NSG_GUARD_REVERT_WINDOW_SECONDS": "REVERT_WINDOW_SECONDS",
    "NSG_GUARD_REVERT_PORT_KINDS": "REVERT_PORT_KINDS",
    "NSG_GUARD_SWEEP_SUBSCRIPTIONS": "SWEEP_SUBSCRIPTIONS",
    "NSG_GUARD_SWEEP_MANAGEMENT_GROUPS": "SWEEP_MANAGEMENT_GROUPS",
}


def main() -> int:
    env = {setting: os.environ[var] for var, setting in PARAMS.items() if var in os.environ}
    try:
        Settings.from_env(env)
    except ConfigError as exc:
        print(f"preprovision: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
