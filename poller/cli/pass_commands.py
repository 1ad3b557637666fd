"""The commands that run passes: once (for cron and timers) and serve.

They import only what a pass needs: the webhook delivery when [webhook] url is set, the
scheduler for serve; a pass every minute pays its imports all day.
"""

from __future__ import annotations

import argparse
import logging
import os

from poller.cli.exits import EXIT_OK, EXIT_PENDING
from poller.config import Settings
from poller.service.lock import pass_lock
from poller.service.passes import recorded_pass
from poller.service.signals import Shutdown, SignalThread
from poller.service.standby import held_mailbox, uses_lease


def once(settings: Settings, args: argparse.Namespace) -> int:
    shutdown = Shutdown(settings.schedule.stop_grace)
    with SignalThread(lambda why: shutdown.request(f"received {why}")):
        try:
            if uses_lease(settings):  # PostgreSQL: one instance per mailbox on any machine
                with held_mailbox(settings, shutdown.event) as lease:
                    if lease is None:
                        return EXIT_OK
                    result = recorded_pass(settings, shutdown.event, track=shutdown.track,
                                           fence=lease.fence())
            else:
                with pass_lock(settings.schedule.lock_file, settings.schedule.lock_wait,
                               shutdown.event) as lock:
                    if lock is None:
                        return EXIT_OK
                    result = recorded_pass(settings, shutdown.event, track=shutdown.track)
        finally:
            # after the pass lock is let go: the mail side never waits for a receiver
            if settings.webhook.url:
                from poller.service.delivery import deliver_pending

                deliver_pending(settings, shutdown.event, budget=settings.webhook.budget)
    return EXIT_PENDING if result.pending else EXIT_OK


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    from poller.service.scheduler import serve  # APScheduler is only needed here

    if not serve(settings, args.config, verbosity=-1 if args.quiet else args.verbose):
        # The pass thread is stuck in a call and would hold the interpreter's exit until its
        # socket timeout: the store is consistent (the cut fails only IMAP steps), so go now.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK
