"""`autodeploy worker`: the readiness worker (Faust)."""

from __future__ import annotations

import argparse
from typing import Any

from streams import brokers, catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.policy_file import load_policies
from streams.commands.keys_cmds import keys_of
from streams.config import KeySettings, LagSettings, Settings, WorkerSettings
from streams.lag.monitor import LagMonitor


def register(sub: Any) -> None:
    parser = sub.add_parser("worker", help="join github.events and ci.events into readiness decisions (Faust)")
    parser.add_argument(
        "--loglevel", default="info", help="the level of Faust's and its libraries' logs (default info)"
    )
    parser.add_argument(
        "--app-loglevel",
        default="info",
        help="the level of autodeploy's own logs: start-up, partitions, recovery, decisions (default info)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from streams.worker.app import TICKS_CONFIGS, ReadinessWorker  # noqa: PLC0415 - Faust is slow to import; only here
    from streams.worker.observability import export_lag  # noqa: PLC0415 - same
    from streams.worker.process import WorkerProcess  # noqa: PLC0415 - same

    settings = Settings.from_env()
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    broker = brokers.connection(settings, "worker")
    signer, verifier = keys_of(KeySettings.from_env())
    worker = ReadinessWorker(
        WorkerSettings.from_env(),
        cat,
        load_policies(settings.policy_path),
        broker.bootstrap_servers,
        broker.security,
        verifier=verifier,
        signer=signer,
    )
    # Faust declares only topics an agent reads directly; the ticks topic is read through the combined source, and
    # brokers here do not auto-create topics, so it is made before the worker subscribes.
    lag = LagSettings.from_env()
    if lag.in_worker:
        export_lag(
            worker.app,
            LagMonitor(worker.offsets, lag.groups, lag.stall_after_s),
            worker.metrics.registry,
            lag.interval_s,
        )
    TopicAdmin(broker.bootstrap_servers, security=broker.security).ensure(
        worker.ticks_topic.get_topic_name(), worker.partitions, TICKS_CONFIGS
    )
    WorkerProcess(worker, loglevel=args.loglevel, app_loglevel=args.app_loglevel).execute_from_commandline()
    return 0
