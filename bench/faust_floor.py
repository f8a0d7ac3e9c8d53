"""Faust's own ceiling: a trivial agent that only counts the records (the same `take_events` batches as the worker),
on the same broker and topics, with the worker's batch, fetch and stream buffer sizes. Run by bench/join.py in a
process of its own; writes events/s as JSON to --out (Faust redirects stdout into its log).

    python -m bench.faust_floor --bootstrap HOST:PORT --topics a,b --total N --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
from faust.worker import Worker

from streams.worker.app import BATCH_SIZE, BATCH_WITHIN_S, FETCH_PARTITION_BYTES, STREAM_BUFFER_EVENTS


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faust-floor-") as datadir:
        app = faust.App(
            f"bench-faust-floor-{os.getpid()}",
            broker=f"kafka://{args.bootstrap}",
            store="memory://",
            datadir=datadir,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
            consumer_max_fetch_size=FETCH_PARTITION_BYTES,
            stream_buffer_maxsize=STREAM_BUFFER_EVENTS,
        )
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        source = app.topic(*args.topics.split(","), **raw)
        seen = {"events": 0, "first": 0.0}

        async def count(stream: Any) -> Any:
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
                seen["first"] = seen["first"] or time.perf_counter()
                seen["events"] += len(events)
                if seen["events"] >= args.total:
                    rate = seen["events"] / (time.perf_counter() - seen["first"])
                    args.out.write_text(json.dumps({"events_per_s": rate}))
                    os._exit(0)  # a Faust worker has no "stop after N"; the figure is out
                yield None

        app.agent(source, name="count")(count)
        worker = Worker(app, loglevel="warning", quiet=True)
        worker.spinner = None
        worker.execute_from_commandline()
    return 1


if __name__ == "__main__":
    sys.exit(main())
