"""`autodeploy deploy-agent`: roll ready commits out on Kubernetes, publish the outcomes on deploy.events."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from typing import Any

from streams import brokers, catalog
from streams.commands.keys_cmds import keys_of, signer_of
from streams.config import DeployAgentSettings, KeySettings, Settings


def register(sub: Any) -> None:
    parser = sub.add_parser("deploy-agent", help="roll out ready commits on Kubernetes; outcomes on deploy.events")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="server-side dry runs only (validated, nothing changed); outcomes carry autodeploydryrun=true",
    )
    parser.set_defaults(handler=run)
    unblock = sub.add_parser("unblock", help="close a service's circuit breaker: the deploy agent deploys it again")
    unblock.add_argument("service", help="the service's name in the policy file")
    unblock.set_defaults(handler=run_unblock)


def kubernetes_api(settings: DeployAgentSettings) -> Any:
    """From KUBECONFIG when set, else the pod's service account (the agent's own RBAC identity)."""
    from kubernetes import client, config  # noqa: PLC0415 - the client is slow to import; only this command needs it

    if settings.kubeconfig is not None:
        return config.new_client_from_config(config_file=str(settings.kubeconfig))  # type: ignore[no-untyped-call]
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer  # noqa: PLC0415 - same

    from streams.adapters.kafka_producer import DurableProducer  # noqa: PLC0415 - same
    from streams.adapters.kubernetes_deployments import DeploymentsClient  # noqa: PLC0415 - same
    from streams.adapters.policy_file import load_policies  # noqa: PLC0415 - same
    from streams.deploy.agent import ConsumeForbidden, DeployAgent, SyncPublisher  # noqa: PLC0415 - same

    settings = Settings.from_env()
    agent_settings = DeployAgentSettings.from_env()
    if args.dry_run:
        agent_settings = dataclasses.replace(agent_settings, dry_run=True)
    broker = brokers.connection(settings, "deploy-agent")
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            **broker.security.librdkafka(),
            "group.id": agent_settings.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    signer, verifier = keys_of(KeySettings.from_env())
    publisher = SyncPublisher(
        DurableProducer(broker.bootstrap_servers, security=broker.security), agent_settings.publish_timeout_s
    )
    agent = DeployAgent(
        agent_settings,
        load_policies(settings.policy_path),
        catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix),
        consumer=consumer,
        publish=publisher,
        deployments=DeploymentsClient(kubernetes_api(agent_settings), request_timeout=agent_settings.request_timeout_s),
        verifier=verifier,
        signer=signer,
    )
    server = serve_metrics(agent.metrics, agent_settings)
    stop = threading.Event()
    # SIGTERM (a pod being stopped) ends the loop between records, or during a retry's back-off.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        agent.run(stop)
    except KeyboardInterrupt:
        stop.set()
    except ConsumeForbidden as e:
        print(f"autodeploy: {broker.security.principal} {e} (group {agent_settings.group_id})", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.shutdown()
        publisher.close()
    return 0


def serve_metrics(metrics: Any, settings: DeployAgentSettings) -> Any | None:
    """Serve the agent's /metrics where its settings say; port 0: not served (returns None)."""
    if settings.metrics_port == 0:
        print("deploy agent metrics not served (AUTODEPLOY_DEPLOY_METRICS_PORT=0)")
        return None
    server = metrics.serve(settings.metrics_port, settings.metrics_host)
    print(f"deploy agent metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    return server


def run_unblock(args: argparse.Namespace) -> int:
    from streams.adapters.kafka_producer import DurableProducer  # noqa: PLC0415 - slow imports, this command only
    from streams.adapters.kubernetes_deployments import DeploymentsClient  # noqa: PLC0415 - same
    from streams.adapters.policy_file import load_policies  # noqa: PLC0415 - same
    from streams.deploy.agent import SyncPublisher  # noqa: PLC0415 - same
    from streams.deploy.unblock import unblock  # noqa: PLC0415 - same

    signer = signer_of(KeySettings.from_env())  # the deploy agent's key: it signs what the agent publishes
    settings = Settings.from_env()
    agent_settings = DeployAgentSettings.from_env()
    policy = load_policies(settings.policy_path).service(args.service)
    topic = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix).topic("deploy.events").name
    deployments = DeploymentsClient(kubernetes_api(agent_settings), request_timeout=agent_settings.request_timeout_s)
    broker = brokers.connection(settings, "deploy-agent")
    publisher = SyncPublisher(
        DurableProducer(broker.bootstrap_servers, security=broker.security), agent_settings.publish_timeout_s
    )
    try:
        cleared = unblock(policy, deployments, publisher, topic, signer=signer)
    finally:
        publisher.close()
    if cleared is None:
        print(f"{args.service}: circuit breaker not open; nothing to do")
    else:
        print(f"{args.service}: circuit breaker cleared ({cleared.failures} failed rollouts); event {cleared.event_id}")
    return 0
