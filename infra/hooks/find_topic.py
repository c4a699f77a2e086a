"""Read `az eventgrid system-topic list -o json` on stdin; print the subscription's topic, if any.

Output (one line, space separated): name, resource group, identity type, base64 JSON of its user-assigned
identities, base64 JSON of its tags. Nothing when the subscription has no Microsoft.Resources.Subscriptions
topic. Compared case-insensitively: ARM ids are case-insensitive.
"""

from __future__ import annotations

import base64
import json
import sys


def b64(value: object) -> str:
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def main(subscription_id: str) -> int:
    source = f"/subscriptions/{subscription_id}".lower()
    for topic in json.load(sys.stdin) or []:
        if str(topic.get("topicType", "")).lower() != "microsoft.resources.subscriptions" \
                or str(topic.get("source", "")).lower() != source:
            continue
        identity = topic.get("identity") or {}
        users = {key: {} for key in (identity.get("userAssignedIdentities") or {})}
        kind = str(identity.get("type") or "None").replace(" ", "")
        print(topic["name"], topic["resourceGroup"], kind, b64(users), b64(topic.get("tags") or {}))
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
