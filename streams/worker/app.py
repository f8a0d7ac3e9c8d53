"""The Faust app: one agent folds github.events, ci.events and clock ticks into one readiness table.

Faust's `Stream.join` is a stub, so the join is the table: both inputs are keyed by repository and co-partitioned,
and the table is keyed by repository, so partition p of every input and of the table's changelog live on the same
worker. One agent consumes all three topics, so a repository's state is never read and written by two coroutines at
once, even across the awaits below. Processing is at-least-once: decisions are sent and acknowledged before the
state that records them is written, so a crash in between re-emits them (with the same ids) instead of losing them.

States live in memory between facts and are written to the table part by part (see state_store): a fact costs the
parts of the state it changed, not the whole repository.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.exceptions import SameNode
from faust.types import TP

from streams.catalog import Catalog
from streams.config import WorkerSettings
from streams.domain.extract import facts_from_event
from streams.domain.policy import Policies
from streams.domain.readiness import Decision, RepositoryState, apply, expire, explain
from streams.worker.deadlines import Deadlines
from streams.worker.decoding import RawRecord, Undecodable, decode
from streams.worker.explain import to_document
from streams.worker.output import readiness_record
from streams.worker.state_store import StateStore

log = logging.getLogger(__name__)


class ReadinessWorker:
    """Builds the Faust app and holds what its agent needs; `app` is what `faust worker` runs."""

    def __init__(self, settings: WorkerSettings, catalog: Catalog, policies: Policies, bootstrap_servers: str) -> None:
        self.settings = settings
        self.catalog = catalog
        self.policies = policies
        self.deadlines = Deadlines()
        self.partitions = partitions = catalog.topic("github.events").partitions
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{bootstrap_servers}",
            store=settings.store,
            datadir=str(settings.datadir),
            topic_partitions=partitions,
            topic_replication_factor=1,
            table_standby_replicas=0,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            web_port=settings.web_port,
            web_host=settings.web_host,
            web_enabled=settings.web_enabled,
            topic_allow_declare=True,
            consumer_group_instance_id=settings.instance_id,
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.inputs = {
            catalog.topic("github.events").name: catalog.topic("github.events"),
            catalog.topic("ci.events").name: catalog.topic("ci.events"),
        }
        self.ticks_topic = self.app.topic(f"{settings.app_id}-ticks", partitions=partitions, internal=True, **raw)
        source = self.app.topic(*self.inputs, self.ticks_topic.get_topic_name(), **raw)
        self.readiness_topic = self.app.topic(catalog.topic("deploy.readiness").name, **raw)
        self.deadletter_topic = self.app.topic(catalog.topic("autodeploy.deadletter").name, **raw)
        self.table = self.app.Table(
            "readiness",
            default=None,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            options={"block_cache_size": settings.block_cache_bytes},
            on_recover=self._rebuild_deadlines,
        )
        self.store = StateStore(self.table)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.agent(source, name="readiness")(self._fold)
        self.github_topic = self.app.topic(catalog.topic("github.events").name, **raw)
        self.app.page("/readiness/{owner}/{repo}/{commit}")(self._explain_page())
        self.app.timer(settings.tick_interval_s)(self._tick)

    async def _fold(self, stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            message = event.message
            record = RawRecord(
                message.topic,
                message.partition,
                message.offset,
                message.key,
                message.value,
                tuple(message.headers or ()),
            )
            try:
                if record.topic == self.ticks_topic.get_topic_name():
                    await self._expire_due(record.partition)
                else:
                    await self._apply(record)
            except Undecodable as e:
                await self._deadletter(record, str(e))
            yield None

    async def _apply(self, record: RawRecord) -> None:
        cloud_event = decode(record, self.inputs[record.topic])
        time = cloud_event.get_time() or datetime.now(UTC)
        facts = facts_from_event(
            cloud_event.get_type(),
            cloud_event.get_source(),
            cloud_event.get_id(),
            time,
            cloud_event.get_data(),
            partitionkey=cloud_event.get_extension("partitionkey"),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        now = datetime.now(UTC)
        for fact in facts:
            services = self.policies.for_repository(fact.repository)
            if not services:
                continue
            state = self.store.load(fact.repository, record.partition)
            state, decisions = apply(state, fact, services, now)
            await self._emit(decisions)
            self._store(fact.repository, state, record.partition)

    async def _expire_due(self, partition: int) -> None:
        now = datetime.now(UTC)
        for repository in self.deadlines.due(partition, now):
            services = self.policies.for_repository(repository)
            state, decisions = expire(self.store.load(repository, partition), services, now)
            await self._emit(decisions)
            self._store(repository, state, partition)

    def _store(self, repository: str, state: RepositoryState, partition: int) -> None:
        self.store.save(repository, state, partition)
        self.deadlines.track(partition, repository, state, self.policies.for_repository(repository))

    async def _emit(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            environment = self.policies.service(decision.service).environment
            out = readiness_record(decision, environment, self.readiness_topic.get_topic_name())
            sent = await self.readiness_topic.send(key=out.key, value=out.value, headers=list(out.headers))
            await sent  # acknowledged before the state that records the decision is written
            log.info(
                "decision kind=%s service=%s commit=%s id=%s",
                decision.kind,
                decision.service,
                decision.commit,
                decision.decision_id,
            )

    async def _deadletter(self, record: RawRecord, reason: str) -> None:
        headers = [
            *record.headers,
            ("deadletter_reason", reason.encode()),
            ("deadletter_topic", record.topic.encode()),
            ("deadletter_partition", str(record.partition).encode()),
            ("deadletter_offset", str(record.offset).encode()),
            ("deadletter_time", datetime.now(UTC).isoformat().encode()),
        ]
        sent = await self.deadletter_topic.send(key=record.key, value=record.value, headers=headers)
        await sent
        log.warning(
            "dead-lettered topic=%s partition=%s offset=%s reason=%s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )

    async def _tick(self) -> None:
        """Wake the agent on each partition this worker owns, so expiry runs inside stream processing (where table
        writes are allowed and land on the right changelog partition)."""
        name = self.ticks_topic.get_topic_name()
        for tp in self.app.consumer.assignment():
            if tp.topic == name and self.deadlines.has_due(tp.partition, datetime.now(UTC)):
                await self.ticks_topic.send(key=b"tick", value=b"", partition=tp.partition)

    async def _rebuild_deadlines(self) -> None:
        self.deadlines.clear()
        for repository, partition, state in self.store.recover(self._partition_of):
            self.deadlines.track(partition, repository, state, self.policies.for_repository(repository))

    def _partition_of(self, repository: str) -> int:
        return int(murmur2(repository.encode()) & 0x7FFFFFFF) % self.partitions

    def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """(sender, revoked TPs): partition numbers are shared by the co-partitioned inputs and the table."""
        revoked: set[TP] = args[0]
        self.store.forget({tp.partition for tp in revoked})

    def _explain_page(self) -> Callable[..., Awaitable[Any]]:
        worker = self

        async def readiness(view: Any, request: Any, owner: str, repo: str, commit: str) -> Any:
            """Which facts a commit has and lacks, per service; asked of the worker that owns the repository."""
            repository = f"github.com/{owner}/{repo}".lower()
            try:
                # The repository is the key of github.events: Faust knows which worker holds its partition.
                return await worker.app.router.route_topic_req(
                    worker.github_topic, repository.encode(), view.web, request
                )
            except SameNode:
                pass
            services = worker.policies.for_repository(repository)
            state = worker.store.load(repository, worker._partition_of(repository))
            return view.json(to_document(repository, commit.lower(), explain(state, commit.lower(), services)))

        return readiness
