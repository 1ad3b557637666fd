"""`poller web`: the read-only web view (poller.web, the [web] extra)."""

from __future__ import annotations

import argparse
import sys

from poller.cli.exits import EXIT_CONFIG, EXIT_OK
from poller.config import Settings


def web_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from poller.web.server import check_address, serve
    except ImportError as exc:
        print(f"poller web: needs the [web] extra (pip install 'ates-poller[web]'): {exc}",
              file=sys.stderr)
        return EXIT_CONFIG
    check_address(settings, args.host)  # ConfigError (exit 2) before anything is bound
    serve(settings, args.host, args.port)
    return EXIT_OK
