"""Options shared by the subcommands that evaluate NSGs (scan, remediate): which ports and tags count."""

from __future__ import annotations

import argparse

from shared.core.policy import DEFAULT_MANAGEMENT_PORTS, Policy, parse_port_list, watched_ports


def _add_policy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ports", default=",".join(map(str, DEFAULT_MANAGEMENT_PORTS)),
                   help="management ports to watch besides SSH 22, comma separated "
                        "(default: %(default)s; '' for none)")
    p.add_argument("--ssh-ports", default="",
                   help="the organisation's own SSH ports (kind ssh-custom), comma separated, e.g. 2222")
    p.add_argument("--extra-tags", default="", metavar="TAGS",
                   help="organisation-specific service tags to accept as (non-public) sources, comma separated")


def policy_from_args(args: argparse.Namespace) -> Policy:
    ssh = parse_port_list(args.ssh_ports, "--ssh-ports")
    mgmt = parse_port_list(args.ports, "--ports")
    extra = frozenset(t.strip().lower() for t in args.extra_tags.split(",") if t.strip())
    return Policy(watched=watched_ports(ssh, mgmt), extra_service_tags=extra)
