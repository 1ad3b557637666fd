"""The metrics textfile has one writer at a time: `serve` writes it after a pass and after a
delivery run, from two threads of one process; each writer has a temporary file of its own, so
none writes into or renames another's half-written file."""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from poller.service.metrics import write_textfile
from poller.service.passes import opened_store


def test_writers_in_several_threads_never_clash(box, tmp_path):
    prom = tmp_path / "metrics" / "poller.prom"
    prom.parent.mkdir()
    failures: list[BaseException] = []

    def write_often() -> None:
        try:
            for _ in range(40):
                write_textfile(prom, db, "alerts")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)

    with opened_store(box.settings) as store:
        db = store.db
        threads = [threading.Thread(target=write_often) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert [p.name for p in prom.parent.iterdir()] == ["poller.prom"]  # no temporary left
    names = {f.name for f in text_string_to_metric_families(prom.read_text())}
    assert any(name.startswith("ates_poller") for name in names)
    assert prom.stat().st_mode & 0o777 == 0o644
