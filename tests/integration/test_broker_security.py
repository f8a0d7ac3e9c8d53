"""The secured local broker (SASL/SCRAM, StandardAuthorizer, deny by default) with the ACLs of topics/acls.yaml:
strangers and wrong passwords are refused, each process's principal can do its own job and nothing else, and a
refusal says who may not do what on which topic.

The broker is this module's own (its own state directory), so the session's broker stays as it is; each test has
topics, a worker id and a deploy group of its own."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType
from confluent_kafka.admin import ResourceType as KafkaResource

from streams import catalog
from streams.adapters.kafka_offsets import KafkaOffsets
from streams.adapters.kafka_producer import DurableProducer, PublishForbidden, Record
from streams.commands import topics_cmds
from streams.config import REPO_ROOT, Settings
from streams.local import kafka
from streams.local.processes import free_port
from streams.webhooks.server import WebhookServer
from tests.integration.test_webhooks_kafka import webhook_settings
from tests.support.brokers import SelectedBroker, local_broker
from tests.support.scenario import History, sha
from tests.support.services import unavailable
from tests.support.signing import TEST_KEY
from tests.support.webhooks import AppClient
from tests.support.worker import Worker, send


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka.BrokerInfo]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTODEPLOY_STATE_DIR", str(tmp_path_factory.mktemp("secured-broker")))
        mp.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        try:
            info = kafka.up(secure=True)
        except Exception as e:
            unavailable("a secured local Kafka broker", e)
        try:
            yield info
        finally:
            kafka.down()


@dataclass(frozen=True)
class Pipeline:
    broker: SelectedBroker
    cat: catalog.Catalog
    worker_id: str
    deploy_group: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def topic(self, name: str) -> str:
        return self.cat.topic(name).name


@pytest.fixture
def pipeline(secured: kafka.BrokerInfo, unique: str, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """Topics and ACLs applied as the admin principal, with this test's prefix, worker id and deploy group."""
    monkeypatch.setenv("AUTODEPLOY_WORKER_ID", f"readiness-{unique}")
    monkeypatch.setenv("AUTODEPLOY_DEPLOY_GROUP", f"deploy-{unique}")
    cat = catalog.load(Settings.from_env().topics_catalog).with_prefix(f"s{unique}-")
    out = _Lines()
    assert topics_cmds.apply_catalog(secured.bootstrap_servers, cat, out, kafka.credentials("admin")) == 0
    return Pipeline(local_broker(secured), cat, f"readiness-{unique}", f"deploy-{unique}")


class _Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def _publish(producer: DurableProducer, topic: str) -> None:
    import asyncio  # noqa: PLC0415 - only here

    async def go() -> None:
        try:
            await producer.publish(Record(topic, b"k", b"{}"), timeout=15)
        finally:
            await producer.stop_polling()

    asyncio.run(go())


def _read_one(broker: SelectedBroker, role: str, topic: str) -> KafkaError | None:
    """Read `topic`'s first partition from the beginning without joining a group (assign): the topic's error, or
    None when a record (or nothing, but no error) came back. librdkafka looks up the coordinator of a group.id even
    then, which a principal without DESCRIBE on that group is refused: that error is not the one looked for."""
    consumer = Consumer(
        broker.config({"group.id": f"never-joined-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}, role=role)
    )
    try:
        hidden: KafkaError | None = consumer.list_topics(topic, timeout=10).topics[topic].error
        if hidden is not None:  # no DESCRIBE either: the topic's metadata is refused
            return hidden
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for message in consumer.consume(10, 0.5):
                error: KafkaError | None = message.error()
                if error is None:
                    return None
                if error.code() != KafkaError.GROUP_AUTHORIZATION_FAILED:  # librdkafka asks for its coordinator
                    return error
        return None
    finally:
        consumer.close()


def test_an_unauthenticated_client_is_refused(secured: kafka.BrokerInfo) -> None:
    assert not kafka.metadata_ok(secured.bootstrap_servers, timeout=3)
    assert kafka.metadata_ok(secured.bootstrap_servers, timeout=5, security=kafka.credentials("webhooks"))


def test_a_wrong_password_is_refused(secured: kafka.BrokerInfo) -> None:
    wrong = replace(local_broker(secured), security=replace(kafka.credentials("admin"), password="not-the-password"))
    errors: list[KafkaError] = []
    admin = AdminClient(wrong.config({"error_cb": errors.append}))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)  # serves the error callback
    assert any(e.code() == KafkaError._AUTHENTICATION and "invalid credentials" in e.str() for e in errors), errors


def test_passwords_are_private_and_never_logged(secured: kafka.BrokerInfo) -> None:
    state = Path(os.environ["AUTODEPLOY_STATE_DIR"]) / "kafka"
    log = secured.log_path.read_text(encoding="utf-8")
    for role in (*kafka.ROLES, "broker", "controller"):
        path = kafka.password_file(role)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text(encoding="utf-8").strip() not in log
    assert stat.S_IMODE((state / "server.properties").stat().st_mode) == 0o600
    assert stat.S_IMODE(kafka.password_file("admin").parent.stat().st_mode) == 0o700
    assert "not-the-password" not in repr(replace(kafka.credentials("admin"), password="not-the-password"))


def test_the_webhooks_principal_writes_its_topics_and_nothing_else(pipeline: Pipeline) -> None:
    producer = pipeline.broker.producer("webhooks")
    for topic in ("github.events", "ci.events", "autodeploy.deadletter"):
        _publish(producer, pipeline.topic(topic))
    with pytest.raises(PublishForbidden) as refused:
        _publish(producer, pipeline.topic("deploy.readiness"))
    assert str(refused.value).startswith(
        f"User:autodeploy-webhooks may not WRITE to topic {pipeline.topic('deploy.readiness')}"
    )
    assert (refused.value.principal, refused.value.operation) == ("User:autodeploy-webhooks", "WRITE")
    producer.close()
    for topic in ("github.events", "ci.events", "deploy.readiness", "deploy.events"):
        error = _read_one(pipeline.broker, "webhooks", pipeline.topic(topic))
        assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, error)


def test_the_worker_cannot_write_deploy_events(pipeline: Pipeline) -> None:
    producer = pipeline.broker.producer("worker")
    with pytest.raises(PublishForbidden, match=r"User:autodeploy-worker may not WRITE to topic .*deploy\.events"):
        _publish(producer, pipeline.topic("deploy.events"))
    producer.close()


def test_the_agent_cannot_write_deploy_readiness(pipeline: Pipeline) -> None:
    producer = pipeline.broker.producer("deploy-agent")
    with pytest.raises(PublishForbidden, match=r"User:autodeploy-deploy-agent may not WRITE to topic .*readiness"):
        _publish(producer, pipeline.topic("deploy.readiness"))
    producer.close()
    assert _read_one(pipeline.broker, "deploy-agent", pipeline.topic("github.events"))


def test_each_principal_does_its_own_job(pipeline: Pipeline, tmp_path: Path) -> None:
    """Webhooks publish, the worker (a real `autodeploy worker`, Faust and its internal topics) decides, the agent
    reads the decisions in its group, commits and publishes an outcome, and the lag exporter reads both groups."""
    env = {
        **os.environ,
        **kafka.client_environment("worker"),
        "KAFKA_BOOTSTRAP_SERVERS": pipeline.bootstrap,
        "AUTODEPLOY_TOPIC_PREFIX": pipeline.cat.prefix,
        "AUTODEPLOY_CONFIG": str(REPO_ROOT / "autodeploy.yaml"),
        "AUTODEPLOY_WORKER_ID": pipeline.worker_id,
        "AUTODEPLOY_DEPLOY_GROUP": pipeline.deploy_group,
        "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / "worker"),
        "AUTODEPLOY_WORKER_STORE": "memory://",
        "AUTODEPLOY_WORKER_PORT": str(free_port()),
    }
    assert "KAFKA_SASL_PASSWORD" not in env, "the password goes by file"
    worker = Worker(env, tmp_path / "worker.log", loglevel="info")
    producer = pipeline.broker.producer("webhooks")
    client = AppClient(WebhookServer(webhook_settings(), pipeline.cat, producer, signer=TEST_KEY).app())
    worker.start()
    try:
        commit = sha("secured")
        history = History().push("0" * 40, commit).circleci(commit, "success").actions(commit, "success")
        send(client, history)
        agent = Consumer(
            pipeline.broker.config(
                {"group.id": pipeline.deploy_group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
                role="deploy-agent",
            )
        )
        agent.subscribe([pipeline.topic("deploy.readiness")])
        decision = None
        deadline = time.monotonic() + 90
        while decision is None and time.monotonic() < deadline and worker.alive():
            for message in agent.consume(10, 0.5):
                assert message.error() is None, message.error()
                decision = message
        log = (tmp_path / "worker.log").read_text()
        assert decision is not None, "no decision; the worker's log:\n" + log[-4000:]
        assert "AuthorizationFailed" not in log and "AUTHORIZATION_FAILED" not in log, log[-4000:]
        assert json.loads(decision.value() or b"{}")["type"].startswith("dev.cdevents")
        agent.commit(message=decision, asynchronous=False)
        agent.close()
        outcomes = pipeline.broker.producer("deploy-agent")
        _publish(outcomes, pipeline.topic("deploy.events"))
        outcomes.close()

        offsets = KafkaOffsets(pipeline.bootstrap, security=pipeline.broker.identity("lag-exporter"))
        groups: set[str] = set()
        deadline = time.monotonic() + 30  # the worker commits its offsets every few seconds
        try:
            while groups != {pipeline.worker_id, pipeline.deploy_group} and time.monotonic() < deadline:
                groups = {p.group for p in offsets.positions([pipeline.worker_id, pipeline.deploy_group])}
                time.sleep(0.5)
        finally:
            offsets.close()
        assert groups == {pipeline.worker_id, pipeline.deploy_group}
        log = (tmp_path / "worker.log").read_text()
        assert "lag poll failed" not in log, log[-4000:]  # the worker's own lag export reads both groups too
    finally:
        worker.kill(signal.SIGTERM)
        client.close()


def test_apply_is_idempotent_and_removes_only_what_autodeploys_principals_should_not_have(
    pipeline: Pipeline,
) -> None:
    admin = AdminClient(pipeline.broker.config())
    extra = [
        AclBinding(
            KafkaResource.TOPIC,
            pipeline.topic("deploy.events"),
            ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        )
        for principal in ("User:autodeploy-webhooks", "User:someone-else")
    ]
    for future in admin.create_acls(extra).values():
        future.result(10)
    out = _Lines()
    security = kafka.credentials("admin")
    assert topics_cmds.apply_catalog(pipeline.bootstrap, pipeline.cat, out, security) == 0
    assert f"- remove User:autodeploy-webhooks READ on topic {pipeline.topic('deploy.events')}" in out.text
    assert "someone-else" not in out.text
    again = _Lines()
    assert topics_cmds.apply_catalog(pipeline.bootstrap, pipeline.cat, again, security) == 0
    assert "no changes: the cluster matches the catalog and its ACLs" in again.text, again.text
    remaining = pipeline.broker.admin().acls(["User:someone-else"])
    assert {b.principal for b in remaining} == {"User:someone-else"}
