"""What bench/backlog.py prints at the end of its rounds: median (min – max) of each figure,
and the raw numbers as JSON when asked."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import dataclass, field


@dataclass
class Results:
    floor: list[float] = field(default_factory=list)  # mails/s
    poller: list[float] = field(default_factory=list)  # mails/s
    rss_mib: list[float] = field(default_factory=list)
    pss_mib: list[float] = field(default_factory=list)
    empty_s: list[float] = field(default_factory=list)
    login_s: list[float] = field(default_factory=list)  # the empty pass's floor
    sqlite: list[float] = field(default_factory=list)  # mails/s, --compare-sqlite


def summary(values: list[float], fmt: str) -> str:
    return (f"{fmt.format(statistics.median(values))}  "
            f"({fmt.format(min(values))} – {fmt.format(max(values))})")



def report(results: Results, args: argparse.Namespace, mails: int, expected: dict[str, int],
           history: int, machine: str) -> None:
    """Print the summary of the counted rounds (and write --json)."""
    print()
    print(f"{mails:,} mails, store {history:,} tickets ({args.database}), "
          f"{args.runs} runs: median (min – max)")
    print(f"  floor, bare fetch      {summary(results.floor, '{:,.0f}')} mails/s")
    print(f"  poller once            {summary(results.poller, '{:,.0f}')} mails/s")
    ratios = [p / f for p, f in zip(results.poller, results.floor, strict=True)]
    print(f"  poller / floor         {summary(ratios, '{:.1%}')}")
    if results.sqlite:
        print(f"  SQLite, same rounds    {summary(results.sqlite, '{:,.0f}')} mails/s")
        shares = [p / s for p, s in zip(results.poller, results.sqlite, strict=True)]
        print(f"  PostgreSQL / SQLite    {summary(shares, '{:.1%}')}")
    print(f"  poller peak RSS        {summary(results.rss_mib, '{:.1f}')} MiB (the larger process)")
    print(f"  both processes, PSS    {summary(results.pss_mib, '{:.1f}')} MiB (sampled every 50 ms)")
    print(f"  empty pass             {summary(results.empty_s, '{:.3f}')} s")
    print(f"  bare login, fresh      {summary(results.login_s, '{:.3f}')} s (import imapclient, "
          "login, select, search, logout)")
    empty_ratios = [e / f for e, f in zip(results.empty_s, results.login_s, strict=True)]
    print(f"  empty pass / login     {summary(empty_ratios, '{:.2f}')}×")
    print(f"  load average at the end {os.getloadavg()[0]:.2f} (other work on the machine skews "
          "every number)")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "database": args.database, "mails": mails,
            "store_size": history,
            "expected": expected, "floor_mails_per_s": results.floor,
            "poller_mails_per_s": results.poller, "peak_rss_mib": results.rss_mib,
            "peak_pss_mib": results.pss_mib,
            "empty_pass_s": results.empty_s, "bare_login_s": results.login_s,
            "sqlite_mails_per_s": results.sqlite,
        }, indent=2))
