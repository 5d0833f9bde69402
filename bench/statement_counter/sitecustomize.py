"""Loaded by every Python process started with this folder on PYTHONPATH (bench/rater_load.py).

When PREFLOOP_BENCH_STATS names a folder, each process counts the SQL statements its engines send
(and its commits) and writes the running totals to `<folder>/<pid>.json` four times a second, so
that the benchmark can read statements per judgment from a real `prefloop serve`, any worker count.
"""

from __future__ import annotations

import os

_FOLDER = os.environ.get("PREFLOOP_BENCH_STATS")

if _FOLDER:
    import json
    import threading
    import time

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _counts = {"statements": 0, "commits": 0}
    _lock = threading.Lock()

    def _statement(*_args: object) -> None:
        with _lock:
            _counts["statements"] += 1

    def _commit(*_args: object) -> None:
        with _lock:
            _counts["commits"] += 1

    event.listen(Engine, "before_cursor_execute", _statement)
    event.listen(Engine, "commit", _commit)

    def _dump() -> None:
        path = os.path.join(_FOLDER, f"{os.getpid()}.json")
        while True:
            time.sleep(0.25)
            with _lock:
                data = json.dumps(_counts)
            with open(path + ".tmp", "w") as out:
                out.write(data)
            os.replace(path + ".tmp", path)

    threading.Thread(target=_dump, daemon=True, name="bench-statement-counter").start()
