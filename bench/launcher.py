"""Forks a command, times it from fork to exit, and prints its rusage and sampled PSS as JSON.

    python bench/launcher.py LOG COMMAND [ARGS...]

Linux carries a process's peak RSS across exec, and a child forked from the benchmark starts
with the benchmark's (which holds the whole backlog). Forked from this small process instead,
the command's wait4 rusage is its own (and that of the children it reaped). Its output goes to
LOG; PSS of it and its children is sampled every 50 ms.
"""

import json
import os
import sys
import threading
import time


def pss_kib(pid: int) -> int:
    """Return the PSS of pid and its children in KiB (0 once they are gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = [int(c) for c in handle.read().split()]
        for proc in (pid, *children):
            with open(f"/proc/{proc}/smaps_rollup") as handle:
                total += sum(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    except (OSError, ValueError):
        pass
    return total


def main(log_path: str, command: list[str]) -> None:
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.execv(command[0], command)
    peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss
        while not done.wait(0.05):
            peak_pss = max(peak_pss, pss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    print(json.dumps({"seconds": seconds, "maxrss_kib": usage.ru_maxrss,
                      "cpu": usage.ru_utime + usage.ru_stime, "pss_kib": peak_pss,
                      "code": os.waitstatus_to_exitcode(status)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
