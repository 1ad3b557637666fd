"""Running the worker: a pass (worker: select, search, the steps earlier passes left;
handling: the new mail, the rules' decisions carried out, one path per mail, loaded only when
there is some; pass_config: what it reads of the settings; pass_result: what it did), mailbox
steps (steps: flag, move, refusals, steps an earlier pass left), the reading helper
(reading_helper: the process every mail is read in, bounded in time; reader: the worker's
handle on it), fetching what the server refuses (fetching), retries and the recorded pass
(passes), the scheduler and IDLE watcher of `serve` (scheduler, idle, signals), the pass lock,
the metrics textfile, the health checks of `status` and `check` (health), and delivering the
event outbox (delivery, webhooks).

May import: everything in poller below the CLI (import-linter checks it; see pyproject.toml).
"""
