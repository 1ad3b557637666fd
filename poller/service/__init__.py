"""Running the worker: a pass (the worker carries the rules' decisions out), the reading
helper (every mail is read there, bounded in time), fetching what the server refuses, retries,
the scheduler and IDLE watcher of `serve`, signals, the pass lock, the metrics textfile and
the health checks of `status` and `check`.

May import: everything in poller below the CLI (import-linter checks it; see pyproject.toml).
"""
