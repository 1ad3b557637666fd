"""`poller serve`: passes on an interval (APScheduler), and at once on new mail (IMAP IDLE).

Every pass goes through request_pass(): one pass at a time in this process (a lock), a
request that comes during a pass gets one more pass right after it (nothing is lost, nothing
piles up), and across processes the lock file keeps `once` and `serve` apart (on PostgreSQL,
the mailbox's lease in the database, across machines: poller.service.standby).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_SCHEDULER_STARTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from poller.config import Settings, load_settings
from poller.errors import MailboxAuthError, MailboxError, PollerError, ReaderError, StoreError
from poller.service import deadlines
from poller.service.delivery import Deliverer
from poller.service.idle import IdleWatcher
from poller.service.lock import pass_lock
from poller.service.passes import recorded_pass
from poller.service.reader import Reader
from poller.service.signals import Shutdown, SignalThread
from poller.service.standby import LeaseKeeper, new_lease, uses_lease

logger = logging.getLogger("poller")

JOB_ID = "pass"
DEADLINE_JOB = "deadline:"  # the id of an [[expect]] entry's deadline job, before its name


class Service:
    """The long-running process: scheduler, IDLE watcher, signals, reload."""

    def __init__(self, settings: Settings, config_path: str):
        self.settings = settings
        self.config_path = config_path
        self.shutdown = Shutdown(settings.schedule.stop_grace)
        self.scheduler = BlockingScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.scheduler.add_listener(self._job_failed, EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._job_skipped, EVENT_JOB_MAX_INSTANCES)
        # A stop that came before the scheduler ran is carried out as soon as it runs.
        self.scheduler.add_listener(self._stop_scheduler, EVENT_SCHEDULER_STARTED)
        self.watcher: IdleWatcher | None = None
        self.deliverer = Deliverer(self._settings, self.shutdown.event)
        self._running = threading.Lock()
        self._again = threading.Event()
        self._state = threading.Lock()
        # One reading helper for every pass: a pass on new mail does not wait for it to start.
        self.reader = Reader()
        # PostgreSQL: the mailbox's lease, kept by a thread; passes run while it is held
        self.keeper: LeaseKeeper | None = None
        if uses_lease(settings):
            self.keeper = LeaseKeeper(new_lease(settings), self.shutdown.event,
                                      lambda: self._wake("this instance took the mailbox"))

    def run(self) -> bool:
        """Serve until SIGTERM or SIGINT; return True once the pass in hand is finished, False
        when it did not end within the grace period (its thread is stuck in a call that the
        cut connection did not end)."""
        s = self.settings.schedule
        logger.info("serving %s: a pass every %d s%s", self.settings.imap.folder, s.interval,
                    ", and at once on new mail (IMAP IDLE)" if s.idle else "")
        self.scheduler.add_job(self.request_pass, "interval", args=("interval",), id=JOB_ID,
                               seconds=s.interval, next_run_time=datetime.now(UTC))
        self._schedule_deadlines(self.settings)
        with SignalThread(self._stop, self._reload), self.reader:
            self.deliverer.start()
            if self.keeper is not None:
                self.keeper.start()
            self._start_watcher()
            self.reader.start()
            self.scheduler.start()  # blocks until _stop() shuts the scheduler down
            finished = self._finish()
        logger.info("stopped")
        return finished

    def request_pass(self, why: str) -> None:
        """Run a pass now, or right after the one running; never two at once."""
        self._again.set()
        while not self.shutdown.event.is_set():
            if not self._running.acquire(blocking=False):
                return  # the running pass sees _again and goes once more
            try:
                while self._again.is_set() and not self.shutdown.event.is_set():
                    self._again.clear()
                    self._one_pass(why)
                    why = "requested during the last pass"
            finally:
                self._running.release()
            if not self._again.is_set():
                return

    def _schedule_deadlines(self, settings: Settings) -> None:
        """A pass at each [[expect]] deadline, which ends by looking at it."""
        for job in self.scheduler.get_jobs():
            if job.id.startswith(DEADLINE_JOB):
                job.remove()
        for entry in settings.expectations:
            self.scheduler.add_job(self.request_pass,
                                   deadlines.trigger(entry, settings.rules.timezone),
                                   args=(f"deadline of {entry.name!r}",),
                                   id=f"{DEADLINE_JOB}{entry.name}")

    def _settings(self) -> Settings:
        with self._state:
            return self.settings

    def _one_pass(self, why: str) -> None:
        settings = self._settings()
        logger.debug("pass (%s)", why)
        try:
            if self.keeper is not None:
                fence = self.keeper.lease.fence()
                if fence is not None:  # else a standby: the active instance does the pass
                    recorded_pass(settings, self.shutdown.event, track=self.shutdown.track,
                                  reader=self.reader, fence=fence)
                return
            with pass_lock(settings.schedule.lock_file, settings.schedule.lock_wait,
                           self.shutdown.event) as lock:
                if lock is not None:
                    recorded_pass(settings, self.shutdown.event, track=self.shutdown.track,
                                  reader=self.reader)
        except MailboxAuthError as exc:
            logger.error("%s; trying again in %d s", exc, settings.schedule.interval)
        except (MailboxError, ReaderError, StoreError) as exc:
            logger.error("pass failed: %s; trying again in %d s", exc, settings.schedule.interval)
        finally:
            self.deliverer.wake()

    def _wake(self, why: str) -> None:
        """Start a pass from another thread, as a job of its own (errors reach the listener)."""
        if not self.shutdown.event.is_set():
            self.scheduler.add_job(self.request_pass, args=(why,), name=f"pass ({why})")

    def _job_failed(self, event: JobExecutionEvent) -> None:
        logger.error("a pass failed unexpectedly (please report this with the log): %s: %s",
                     type(event.exception).__name__, event.exception,
                     exc_info=(type(event.exception), event.exception, event.exception.__traceback__))

    def _job_skipped(self, event: JobEvent) -> None:
        logger.debug("interval reached while a pass is still running; runs coalesced (%s)",
                     event.job_id)

    def _start_watcher(self) -> None:
        if self.settings.schedule.idle:
            self.watcher = IdleWatcher(self.settings, self._wake)
            self.watcher.start()

    def _stop(self, why: str) -> None:
        self.shutdown.request(f"received {why}")
        self._stop_scheduler()

    def _stop_scheduler(self, _event: object = None) -> None:
        if self.shutdown.event.is_set() and self.scheduler.running:
            try:
                self.scheduler.shutdown(wait=False)
            except SchedulerNotRunningError:
                pass  # stopped by the other thread in the meantime

    def _reload(self) -> None:
        """Re-read settings.ini; keep the old settings if the new ones are not valid."""
        try:
            new = load_settings(self.config_path)
        except PollerError as exc:
            logger.error("received SIGHUP; settings not reloaded, keeping the old ones: %s", exc)
            return
        with self._state:
            old, self.settings = self.settings, new
        self.shutdown.grace = new.schedule.stop_grace
        logger.info("received SIGHUP; settings reloaded from %s", self.config_path)
        if new.schedule.interval != old.schedule.interval:
            self.scheduler.reschedule_job(JOB_ID, trigger="interval",
                                          seconds=new.schedule.interval)
        if (new.imap, new.schedule, new.retry) != (old.imap, old.schedule, old.retry):
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher = None
            self._start_watcher()
        self._schedule_deadlines(new)
        self._wake("settings reloaded")

    def _finish(self) -> bool:
        """After the scheduler stopped: end IDLE, wait for the pass and the delivery in hand;
        return whether the pass ended in time."""
        if self.watcher is not None:
            self.watcher.stop()
        grace = self.shutdown.grace + 5.0
        if self._running.acquire(timeout=grace):
            self._running.release()
            finished = True
        else:
            logger.error("the pass did not end within %.0fs of the stop request; exiting anyway",
                         grace)
            finished = False
        self.deliverer.stop(self.settings.webhook.timeout + 1.0)
        if self.keeper is not None:
            self.keeper.join(10.0)
        return finished


def serve(settings: Settings, config_path: str, verbosity: int = 0) -> bool:
    """Run the service until a stop signal; return whether the pass in hand ended in time."""
    # The listeners say what matters (a failed pass, coalesced runs) once, in our words.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbosity >= 2 else logging.ERROR)
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    return Service(settings, config_path).run()
