"""``python -m localazure --port 8443 [--seed FILE] [--data-dir DIR]``: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from shared.core.errors import InputError

from .auth import DEFAULT_TOKEN
from .seeds import seed_file
from .server import LocalAzure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m localazure", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8443, help="0 = pick a free port")
    ap.add_argument("--seed", action="append", default=[], help="JSON seed file (repeatable)")
    ap.add_argument("--data-dir", help="append ingested rows to <dir>/<stream>.jsonl")
    ap.add_argument("--schema", help="table schema JSON (default shared/schema/findings_table.json)")
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--page-size", type=int, default=50)
    ap.add_argument("--lro-polls", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # A shell starts background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt:
        # "Ctrl-C to stop" (or kill -INT) must work however we were started.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    azure = LocalAzure(
        host=args.host,
        port=args.port,
        token=args.token,
        page_size=args.page_size,
        lro_polls=args.lro_polls,
        schema_path=args.schema,
        data_dir=args.data_dir,
        verbose=args.verbose,
    )
    try:
        counts = [seed_file(azure, path) for path in args.seed]
    except InputError as exc:
        print(f"localazure: error: {exc}", file=sys.stderr)
        return 2
    for path, c in zip(args.seed, counts, strict=True):
        if c.nsgs == 0:
            print(f"localazure: WARNING: {path} holds no NSGs", file=sys.stderr)
    azure.start()
    try:  # from here on Ctrl-C (even mid-print) stops the server threads, or the process would never exit
        print(f"localazure listening on {azure.url}", flush=True)
        print(f"  CA certificate : {azure.ca_path}  (pass connection_verify=<this>)")
        print(f"  bearer token   : {azure.token}")
        print(f"  DCR id/stream  : {azure.dcr_id} / {azure.stream}")
        print(f"  NSGs seeded    : {len(azure.nsgs())}")
        print("Ctrl-C to stop.", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        azure.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
