"""The readiness fold written with Quix Streams: the same records, the same pure domain functions (decode, extract
facts, readiness apply, decision records), the state of each repository in a Quix State store (RocksDB with a
changelog topic), the decisions on deploy.readiness. `bench.join --quix PYTHON` runs it next to the Faust worker.

Quix Streams pins confluent-kafka < 2.13 and autodeploy needs >= 2.16, so it runs in a virtualenv of its own
(`make bench` creates .venv-quix: quixstreams, the few libraries the domain needs, and autodeploy without its deps).

    .venv-quix/bin/python -m bench.quix --bootstrap HOST:PORT --prefix P --policy FILE --expected N --state-dir DIR

Prints one JSON line: events, seconds from the first record to the last, seconds from start to the last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quixstreams import Application, State, message_context

from streams import catalog
from streams.adapters.policy_file import load_policies
from streams.domain.readiness import apply, empty_state, from_json, to_json
from streams.events.decoding import RawRecord, Undecodable, decode
from streams.worker.event_facts import facts_of
from streams.worker.output import readiness_record

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--expected", type=int, required=True, help="stop after this many input records")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(args.prefix)
    policies = load_policies(args.policy)
    specs = {cat.topic(n).name: cat.topic(n) for n in ("github.events", "ci.events")}
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"bench-quix-{int(time.time())}",
        auto_offset_reset="earliest",
        state_dir=str(args.state_dir),
        use_changelog_topics=True,
        processing_guarantee="at-least-once",
    )
    raw = {"value_deserializer": "bytes", "key_deserializer": "bytes"}
    github, ci = (app.topic(name, **raw) for name in specs)  # type: ignore[arg-type]
    out = app.topic(cat.topic("deploy.readiness").name, value_serializer="bytes", key_serializer="bytes")
    started, seen = time.perf_counter(), {"count": 0, "first": 0.0, "last": 0.0}

    def fold(value: bytes, key: bytes, _timestamp: int, headers: Any, state: State) -> list[bytes]:
        context = message_context()
        record = RawRecord(context.topic, context.partition, context.offset, key, value, tuple(headers or ()))
        decisions: list[bytes] = []
        try:
            event = decode(record, specs[record.topic])
        except Undecodable:
            event = None
        if event is not None:
            now = datetime.now(UTC)
            facts = facts_of(event, record)
            for fact in facts:
                services = policies.for_repository(fact.repository)
                if not services:
                    continue
                doc = state.get("readiness")
                current = from_json(doc) if doc is not None else empty_state(fact.repository)
                new, made = apply(current, fact, services, now)
                state.set("readiness", to_json(new))
                for d in made:
                    environment = policies.service(d.service).environment
                    decisions.append(readiness_record(d, environment, out.name).value)
        seen["count"] += 1
        seen["first"] = seen["first"] or time.perf_counter()
        if seen["count"] >= args.expected:
            seen["last"] = time.perf_counter()
            app.stop()
        return decisions

    sdf = app.dataframe(github).concat(app.dataframe(ci))
    sdf = sdf.apply(fold, stateful=True, expand=True, metadata=True)
    sdf.to_topic(out)
    app.run()
    result = {
        "events": seen["count"],
        "steady_s": seen["last"] - seen["first"],
        "total_s": seen["last"] - started,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
