"""The Faust app: one agent folds github.events, ci.events and clock ticks into one readiness table.

Faust's `Stream.join` is a stub, so the join is the table: both inputs are keyed by repository and co-partitioned,
and the table is keyed by repository, so partition p of every input and of the table's changelog live on the same
worker. One agent consumes all three topics, so a repository's state is never read and written by two coroutines at
once, even across the awaits below.

Processing is at-least-once, and a decision is never published twice with different contents. Events are folded in
batches (`take_events`): every event of a batch is folded against the states in memory; then each repository the
batch changed is written once, under an event of its own partition (a table write goes to the current event's
partition), with what it is about to publish (state_store.Outbox); then the changelog's acks are awaited; only then
are the decisions and dead letters sent, their acks awaited, and the batch's offsets acked to Faust. A crash before
the publication's ack leaves states that record the decisions: replayed events are duplicates to them, and the
restarted worker publishes the outbox again (same records, same ids). Publishing first and writing after (as this
worker once did) let a crash in between decide anew from a replay, where the two input streams interleave
differently: a chaos run re-emitted a decision with another kind. Awaiting the changelog also bounds what a kill -9
can leave unacknowledged to one batch, so the local store never mixes records of two batches after a restart.

States live in memory between facts and are written to the table part by part (see state_store, whose meta record
carries the changed parts until they outgrow STATE_DEFER_BYTES): a batch costs about one changelog record per
repository it changed, not one per part per fact.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.exceptions import SameNode
from faust.types import TP, EventT

from streams.adapters.kafka_offsets import KafkaOffsets, OffsetsUnavailable
from streams.adapters.kafka_producer import Record
from streams.catalog import Catalog
from streams.config import KafkaSecurity, WorkerSettings
from streams.domain import promotion
from streams.domain.fold import fold_fact, fold_time, next_due
from streams.domain.policy import Policies
from streams.domain.promotion import EnvironmentDecision
from streams.domain.readiness import RepositoryState, earliest_expiry, explain
from streams.events.deadletters import deadletter_headers
from streams.events.decoding import RawRecord, Undecodable
from streams.events.dsse_keys import SigningKey
from streams.events.signing import DirectoryVerifier
from streams.worker.batch import Batch, current, received
from streams.worker.changelog_restore import CHANGELOG_CONFIGS, ChangelogRestore, RestoringTable
from streams.worker.deadlines import Deadlines
from streams.worker.event_facts import verified_facts
from streams.worker.explain import AMBIGUOUS_STATUS, AmbiguousCommit, ambiguous_document, resolve_commit, to_document
from streams.worker.heap import trim_heap
from streams.worker.log_clock import LogClock
from streams.worker.log_ends import LogEnds, LookUpFailed
from streams.worker.merge import Lag, TimeOrderedMerge
from streams.worker.metrics import WorkerMetrics
from streams.worker.observability import serve_metrics
from streams.worker.output import readiness_record
from streams.worker.publishing import Publishing
from streams.worker.state_store import META, Outbox, StateStore
from streams.worker.table_scan import meta_records
from streams.worker.unfinished import UnfinishedBatches

log = logging.getLogger(__name__)

BATCH_SIZE = 2000  # events folded before their decisions are sent and their states written
# A batch writes one changelog record per repository it changed: through a backlog, the larger the batch, the more
# events share each write (docs/performance.md).
STREAM_BUFFER_EVENTS = 4 * BATCH_SIZE  # Faust's per-stream buffer (default 4096) must hold more than a batch
# Per partition and fetch (Faust's default 1 MiB is ~150 pushes): with it the agent waited for records about as
# long as it folded them, because each fetch brought only a fraction of a batch.
FETCH_PARTITION_BYTES = 4 * 1024 * 1024
# A state record is up to STATE_DEFER_BYTES and more; at aiokafka's default batch (16 KiB) each one was a produce
# request of its own, awaited in turn, and the changelog's flush took a third of a batch's time.
PRODUCER_BATCH_BYTES = 512 * 1024  # well under the broker's default message.max.bytes (1 MiB)
BATCH_WITHIN_S = 0.1  # how long a batch waits to fill up: also the most a decision waits under light load
# The clock's records: kept an hour, stamped by the broker like the inputs they are merged with.
TICKS_CONFIGS = {"retention.ms": "3600000", "message.timestamp.type": "LogAppendTime"}
MERGE_POLL_S = 0.01  # how often records held by the merge are looked at again (they wait for a clock, not a record)
PRODUCER_BUFFER_MESSAGES = 10 * BATCH_SIZE
INPUTS = ("github.events", "ci.events", "deploy.gates")  # the join's inputs, in the merge's order for ties
STATE_DEFER_BYTES = 32 * 1024  # state parts carried in the meta record until they outgrow this (see state_store)


def faust_credentials(security: KafkaSecurity) -> dict[str, Any]:
    """Faust's (aiokafka's) settings for the process's Kafka identity: the same one its librdkafka clients use."""
    context = ssl.create_default_context(cafile=str(security.ca_location) if security.ca_location else None)
    if security.sasl:
        credentials = faust.SASLCredentials(
            username=security.username,
            password=security.password,
            mechanism=security.mechanism,
            ssl_context=context if security.tls else None,
        )
        return {"broker_credentials": credentials}
    if security.tls:
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {}


class ReadinessApp(faust.App):
    """Faust's App, telling the worker as a rebalance starts and before it stops: both wait for every record Faust
    handed out that is still referenced, and the merge holds some."""

    def __init__(self, *args: Any, drop_held: Callable[..., None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drop_held = drop_held

    def on_rebalance_start(self) -> None:
        super().on_rebalance_start()
        # Called in the consumer's thread; the merge belongs to the app's loop.
        self.loop.call_soon_threadsafe(self._drop_held)

    async def on_stop(self) -> None:
        self._drop_held(stopping=True)
        await super().on_stop()


class ReadinessWorker:
    """Builds the Faust app and holds what its agent needs; `app` is what `faust worker` runs."""

    def __init__(
        self,
        settings: WorkerSettings,
        catalog: Catalog,
        policies: Policies,
        bootstrap_servers: str,
        security: KafkaSecurity | None = None,
        *,
        verifier: DirectoryVerifier | None = None,
        signer: SigningKey | None = None,
    ) -> None:
        self.settings = settings
        self.security = security = security or KafkaSecurity()
        # Every input event is verified before it becomes a fact (None: unverified, AUTODEPLOY_INSECURE_...), and
        # every decision is signed with this worker's key.
        self.verifier = verifier
        self.signer = signer
        self.bootstrap_servers = bootstrap_servers
        self.catalog = catalog
        self.policies = policies
        self.deadlines = Deadlines()
        self.unfinished = UnfinishedBatches()
        self.partitions = partitions = catalog.topic("github.events").partitions
        self.app = ReadinessApp(
            settings.app_id,
            drop_held=self._drop_held,
            broker=f"kafka://{bootstrap_servers}",
            store=settings.store,
            datadir=str(settings.datadir),
            topic_partitions=partitions,
            topic_replication_factor=1,
            table_standby_replicas=0,
            producer_acks=-1,
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            consumer_max_fetch_size=FETCH_PARTITION_BYTES,
            stream_buffer_maxsize=STREAM_BUFFER_EVENTS,
            consumer_auto_offset_reset="earliest",
            web_port=settings.web_port,
            web_host=settings.web_host,
            web_enabled=settings.web_enabled,
            topic_allow_declare=True,
            consumer_group_instance_id=settings.instance_id,
            Table=RestoringTable,
            **faust_credentials(security),
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
            catalog.topic("deploy.gates").name: catalog.topic("deploy.gates"),
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
            # RocksDB's defaults (64 MiB x 3 memtables, 2 GiB block cache) are per partition; a worker owns several.
            options={
                "block_cache_size": settings.block_cache_bytes,
                "write_buffer_size": 8 * 1024 * 1024,
                "max_write_buffer_number": 2,
            },
            on_recover=self._recover,
            extra_topic_configs=CHANGELOG_CONFIGS,
            restore_from=ChangelogRestore.of(bootstrap_servers, security, settings.app_id)
            if settings.bulk_restore
            else None,
        )
        self.store = StateStore(
            self.table,
            defer_bytes=STATE_DEFER_BYTES,
            cache_commits=settings.cache_commits,
            table_sorted=settings.store.startswith(("rocksdb:", "rocksdict:")),
            meta_records=meta_records(self.table, META.encode()),
        )
        # A batch writes one changelog record per repository it changed, all at once; Faust pauses every stream
        # while more than `max_messages` wait in its producer buffer (default 100), which stalled each batch.
        self.app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.offsets = KafkaOffsets(bootstrap_servers, security=security)
        self.source_topics = {*self.inputs, self.ticks_topic.get_topic_name()}
        self.app.on_rebalance_complete.connect(self._rewind_never_committed)
        self.app.agent(source, name="readiness")(self._fold)
        # Ties at one timestamp: source control first (a push before the CI result of its commit), the clock last.
        # Gate facts follow the facts of the same moment (a rollout completes after the decision that started it).
        ranks = {catalog.topic(name).name: rank for rank, name in enumerate(INPUTS)}
        ranks[self.ticks_topic.get_topic_name()] = len(INPUTS)
        self.merge = TimeOrderedMerge[EventT[Any]](
            ranks, skew_ms=settings.merge_skew_ms, idle_ms=settings.merge_idle_ms
        )
        self.publishing = Publishing()
        self._publication: asyncio.Future[None] | None = None  # the batch folded ahead, being published
        self._crashing: asyncio.Future[None] | None = None  # kept: a task nobody references may be collected
        self._folding = asyncio.Lock()  # the agent and the merge's clock fold in turn, never at once
        self._stopping = False
        self.clock = LogClock(settings.merge_skew_ms)
        self.ends = LogEnds(self._look_up_ends)
        if settings.ordered_merge:
            self.app.task(self._drain_merge)
            self.app.task(self._run_ends)
        self.github_topic = self.app.topic(catalog.topic("github.events").name, **raw)
        self.app.page("/readiness/{owner}/{repo}/{commit}")(self._explain_page())
        self.app.timer(settings.tick_interval_s)(self._tick)
        self.metrics = WorkerMetrics()
        serve_metrics(self.app, self.metrics.registry)

    async def _fold(self, stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            async with self._folding:
                if self.settings.ordered_merge:
                    self._hold(events)
                    await self._fold_released()
                else:
                    await self._fold_batch(events)
            # Not kept while the agent waits for its next batch: a held record dropped by a rebalance must be
            # unreferenced for Faust to stop waiting for it.
            del events
            yield None

    def _hold(self, events: Sequence[EventT[Any]]) -> None:
        """Give the records to the merge. Each keeps one reference of its own until it is folded: `take_events` acks
        the batch it handed over, and a record acked before it is folded would be committed unfolded."""
        if self.app.rebalancing or self._stopping:
            # Not folded, not acked: read again from the committed offsets after the rebalance or the restart.
            for event in events:
                event.message.incref()
            self._unwait(events)
            return
        for event in events:
            message: Any = event.message
            message.incref()
            # Records dropped here (a partition read again after a seek) come again as new records.
            self._unwait(
                self.merge.add(message.topic, message.partition, message.offset, _timestamp_ms(message), event)
            )

    def _unwait(self, events: Iterable[EventT[Any]]) -> None:
        """Faust waits, before a rebalance or a stop goes on, for every record it handed out to be acked: records
        dropped unfolded will not be (their offsets stay uncommitted) and must not be waited for.
        Private: tests/unit/test_faust_internals.py fails if the set goes away."""
        consumer: Any = self.app.consumer
        unacked = consumer._unacked_messages
        for event in events:
            unacked.discard(event.message)

    async def _fold_released(self) -> None:
        released = self.merge.release(int(time.time() * 1000), self._lag)
        self.metrics.merge_held.set(len(self.merge))
        if released.forced:
            self.metrics.merge_forced.inc(released.forced)
            log.warning(
                "merge went on without a partition that is not caught up records=%d waited_for=%s",
                released.forced,
                ",".join(f"{t}[{p}]@{r}/{self._highwater(t, p)}" for t, p, r in released.waited_for),
            )
        if not released.items:
            return
        # Published and acked while the next batch folds (`_fold_batch`): the merge holds a reference to each record,
        # so Faust does not commit it before this batch's decisions are acknowledged.
        await self._fold_batch(released.items, ahead=True)

    def _lag(self, topic: str, partition: int, received: int | None, since_ms: int) -> Lag:
        """What the partition has left to deliver to the agent; caught up only by a look at its end made at or after
        `since_ms`."""
        if received is None:
            return Lag.UNKNOWN
        tp = TP(topic, partition)
        consumer: Any = self.app.consumer
        # Private: the offset Faust last handed towards the agents. Records between it and the agent are in transit.
        # tests/unit/test_faust_internals.py fails if it goes away.
        read = consumer._read_offset.get(tp)
        if read is not None and read > received:
            return Lag.SOME
        highwater = self._highwater(topic, partition)  # the last fetch's: an end only grows, so "behind" holds
        if highwater is not None and received + 1 < highwater:
            return Lag.SOME
        end = self.ends.end(tp, since_ms)
        if end is None:
            return Lag.LOOKING
        return Lag.NONE if received + 1 >= end else Lag.SOME

    def _highwater(self, topic: str, partition: int) -> int | None:
        """The partition's end offset as of the consumer's last fetch; None before the first (or once revoked)."""
        try:
            highwater: int | None = self.app.consumer.highwater(TP(topic, partition))
        except (AssertionError, KeyError):  # aiokafka asserts the partition is assigned: not ours any more
            return None
        return highwater

    async def _look_up_ends(self, tps: Sequence[TP]) -> Mapping[TP, int]:
        """Through a client of its own: Faust's consumer thread (its `highwaters`) serves calls from a queue that
        other calls can hold: a worker's first start waited 30 s for its answer there (test_worker_kills)."""
        try:
            ends = await asyncio.to_thread(self.offsets.end_offsets, [(tp.topic, tp.partition) for tp in tps])
        except OffsetsUnavailable as e:
            raise LookUpFailed(str(e)) from e
        return {TP(topic, partition): end for (topic, partition), end in ends.items()}

    async def _run_ends(self) -> None:
        await self.ends.run()

    async def _drain_merge(self) -> None:
        """Fold what the merge releases as the clock moves on (a record waiting for the skew or for a partition that
        is not caught up): no record of its own may come to wake the agent."""
        while not self.app.should_stop:
            await asyncio.sleep(MERGE_POLL_S)
            if len(self.merge) and not self.app.rebalancing:
                async with self._folding:
                    await self._fold_released()

    def _drop_held(self, *, stopping: bool = False) -> None:
        """Unfolded and unacked, the held records are read again from the committed offsets after a rebalance or a
        restart; Faust stops waiting for them once nothing references them."""
        if not hasattr(self, "merge"):  # the app is built before the merge
            return
        # Stopping, the agent still receives what the fetcher had: nothing more is held from then on.
        self._stopping = self._stopping or stopping
        dropped = self.merge.clear()
        self._unwait(dropped)
        self.metrics.merge_held.set(0)
        if dropped:
            log.info("rebalance: held records dropped, read again after it records=%d", len(dropped))

    async def _fold_batch(self, events: Sequence[EventT[Any]], *, ahead: bool = False) -> None:
        """Fold a batch against the states in memory and write each changed state once with its outbox; then
        `_publish` it: await the changelog, send the decisions and dead letters, await their acks.

        Without `ahead`, this returns once the batch is published, and the caller acks it. With `ahead`, the batch is
        published (and its records acked) in a task while the next batch folds: the agent would otherwise sit idle
        through two round trips to the broker per batch. At most one batch is ahead of its publication; its failure
        fails the next call. A state saved while earlier decisions of its repository are unacknowledged carries them
        in its outbox too (`Outbox`): a crash between the two then publishes both again, never neither."""
        batch = Batch()
        ticks = self.ticks_topic.get_topic_name()
        self._finish_crashed(batch, events)
        for event in events:
            message: Any = event.message
            record = RawRecord(
                message.topic,
                message.partition,
                message.offset,
                message.key,
                message.value,
                tuple(message.headers or ()),
            )
            at = self.clock.at(message.partition, received(message))
            with current(event):  # table reads go to the event's partition, as in per-event processing
                try:
                    # Expiry happens at the log's time: before the first record stamped past the deadline, so a replay
                    # without the live run's clock ticks expires at the same place.
                    self._expire_due(batch, event, at)
                    if record.topic != ticks:
                        self._apply(batch, event, record, at)
                except Undecodable as e:
                    batch.deadletters.append((record, str(e)))
                    batch.deadletter_reasons.append((record.topic, e.reason))
        outgoing = self._records(batch)
        for repository, state in batch.states.items():
            event = batch.events[repository]
            outbox = self.publishing.outbox(repository, batch.read[repository], outgoing.get(repository, ()))
            with current(event):  # the changelog and store partition of a table write is the current event's
                self._store(repository, state, event.message.partition, outbox, rewrite=repository in batch.republish)
        number = self.publishing.start(outgoing, batch.read)
        previous = self._publication
        publication = asyncio.ensure_future(self._publish(batch, outgoing, number, events, previous, ack=ahead))
        if not ahead:
            await publication
            return
        self._publication = publication
        publication.add_done_callback(self._published)
        if previous is not None:
            await previous  # one batch ahead at most: its failure (a broker down) stops the agent here

    def _published(self, publication: asyncio.Future[None]) -> None:
        """A batch published ahead that failed (the producer gave up) stops the worker, even with no batch after it
        to notice: its records are unacked, and a restart publishes its outbox again."""
        error = None if publication.cancelled() else publication.exception()
        if error is None:
            return
        log.critical("publishing a batch failed, stopping error=%r", error)
        self._crashing = asyncio.ensure_future(self.app.crash(error))

    async def _publish(
        self,
        batch: Batch,
        outgoing: dict[str, tuple[Record, ...]],
        number: int,
        events: Sequence[EventT[Any]],
        previous: asyncio.Future[None] | None,
        *,
        ack: bool,
    ) -> None:
        """Publish a folded batch after the one before it; `ack`: then ack its records (held by the merge)."""
        if previous is not None:
            await previous
        await self.app.producer.flush()  # the changelog holds the states before anything they record is published
        if self.settings.exit_before_publish and batch.decisions:
            log.warning("exiting before publishing, as configured (AUTODEPLOY_WORKER_EXIT_BEFORE_PUBLISH)")
            os._exit(137)
        await self._emit(batch, outgoing)
        self.publishing.done(number)
        if ack:
            consumer = self.app.consumer
            for event in events:
                event.message.ack(consumer)
        topics = (event.message.topic for event in events)
        self.metrics.batch("readiness", topics, batch.decisions, batch.deadletter_reasons, datetime.now(UTC))

    def _finish_crashed(self, batch: Batch, events: Sequence[EventT[Any]]) -> None:
        """Take the outboxes of a crashed batch (see `_recover`) into this one, with an event of their partition:
        they are published again, and their states written whole."""
        if not self.unfinished:
            return
        for event in events:
            partition = event.message.partition
            for repository, outbox in self.unfinished.take(partition).items():
                batch.republish[repository] = outbox.records
                with current(event):
                    batch.fold(repository, self._load(batch, repository, partition), event, [])
            if not self.unfinished:
                return

    def _records(self, batch: Batch) -> dict[str, tuple[Record, ...]]:
        """Per repository, what the batch publishes for it: a crashed batch's outbox first, then its decisions."""
        out: dict[str, list[Record]] = {r: list(records) for r, records in batch.republish.items()}
        topic = self.readiness_topic.get_topic_name()
        for decision in batch.decisions:
            if isinstance(decision, EnvironmentDecision):
                environment = decision.environment
            else:
                environment = self.policies.service(decision.service).environment
            record = readiness_record(decision, environment, topic, self.signer)
            out.setdefault(decision.repository, []).append(record)
        return {r: tuple(records) for r, records in out.items()}

    def _load(self, batch: Batch, repository: str, partition: int) -> RepositoryState:
        state = batch.states.get(repository)
        return state if state is not None else self.store.load(repository, partition)

    def _apply(self, batch: Batch, event: EventT[Any], record: RawRecord, now: datetime) -> None:
        facts = verified_facts(record, self.inputs[record.topic], received(event.message), self.verifier)
        for fact in facts:
            services = self.policies.for_repository(fact.repository)
            if not services:
                continue
            state, decisions = fold_fact(self._load(batch, fact.repository, record.partition), fact, services, now)
            batch.fold(fact.repository, state, event, decisions, event_id=fact.ref.id)

    def _expire_due(self, batch: Batch, event: EventT[Any], now: datetime) -> None:
        partition = event.message.partition
        if not self.deadlines.has_due(partition, now):
            return
        for repository in self.deadlines.due(partition, now):
            services = self.policies.for_repository(repository)
            state, decisions = fold_time(self._load(batch, repository, partition), services, now)
            batch.fold(repository, state, event, decisions)

    def _store(self, repository: str, state: RepositoryState, partition: int, outbox: Outbox, *, rewrite: bool) -> None:
        replaced = self.store.save(repository, state, partition, outbox, rewrite=rewrite)
        self.deadlines.track(partition, repository, state, self.policies.for_repository(repository), replaced=replaced)

    async def _emit(self, batch: Batch, outgoing: dict[str, tuple[Record, ...]]) -> None:
        """Send the batch's decision records (per repository, in order) and dead letters, and return once Kafka has
        acknowledged them all."""
        sent = []
        for records in outgoing.values():
            for out in records:
                sent.append(await self.readiness_topic.send(key=out.key, value=out.value, headers=list(out.headers)))
        for record, reason in batch.deadletters:
            sent.append(await self._deadletter(record, reason))
        await asyncio.gather(*sent)
        for repository, records in batch.republish.items():
            log.info("published again after a crash repository=%s records=%d", repository, len(records))
        for decision, cause in zip(batch.decisions, batch.causes, strict=True):
            log.info(
                "decision kind=%s service=%s commit=%s id=%s event=%s topic=%s partition=%d offset=%d",
                decision.kind,
                decision.service,
                decision.commit,
                decision.decision_id,
                cause.event_id or "-",  # a clock tick (expiry) is no CloudEvent
                cause.topic,
                cause.partition,
                cause.offset,
            )
        for record, reason in batch.deadletters:
            log.warning(
                "dead-lettered topic=%s partition=%s offset=%s reason=%s",
                record.topic,
                record.partition,
                record.offset,
                reason,
            )

    async def _deadletter(self, record: RawRecord, reason: str) -> Awaitable[Any]:
        headers = list(deadletter_headers(reason, "worker", record))
        return await self.deadletter_topic.send(key=record.key, value=record.value, headers=headers)

    async def _tick(self) -> None:
        """Wake the agent on each partition this worker owns, so expiry runs inside stream processing (where table
        writes are allowed and land on the right changelog partition)."""
        name = self.ticks_topic.get_topic_name()
        for tp in self.app.consumer.assignment():
            if tp.topic == name and self.deadlines.has_due(tp.partition, datetime.now(UTC)):
                await self.ticks_topic.send(key=b"tick", value=b"", partition=tp.partition)

    async def _recover(self) -> None:
        """After a table recovery: rebuild the deadlines, and find the batches that wrote states but may not have
        published their outboxes (their source offsets are not committed); the next batch of each such partition
        publishes them again (`_finish_crashed`).

        Faust runs this in a task whose exception nobody reads, then resumes the streams: a worker going on after a
        failure here would replay the crashed batches' events as duplicates and never publish their outboxes. It
        exits instead, and its restart recovers again."""
        try:
            await self._find_deadlines_and_unfinished()
        except Exception:
            log.critical("recovery failed, exiting so that a restart recovers again", exc_info=True)
            logging.shutdown()
            os._exit(70)  # EX_SOFTWARE; Faust's shutdown would wait on the recovery this is part of

    async def _find_deadlines_and_unfinished(self) -> None:
        started = time.monotonic()
        committed = await self._committed_offsets()
        topic = self.readiness_topic.get_topic_name()
        self.deadlines.clear()
        self.unfinished.clear()
        repositories = deadlines = 0
        partitions: set[int] = set()
        for found in self.store.recover(self._partition_of):
            services = self.policies.for_repository(found.repository)
            deadline = earliest_expiry(found.first_facts, services)
            if found.promoting:  # a few repositories: decoding their state here costs little
                due = next_due(self.store.load(found.repository, found.partition), services)
                deadline = due if deadline is None or (due is not None and due < deadline) else deadline
            self.deadlines.set(found.partition, found.repository, deadline)
            self.unfinished.note(found, committed, topic)
            repositories += 1
            deadlines += deadline is not None
            partitions.add(found.partition)
        log.info(
            "table recovered repositories=%d partitions=%s deadlines=%d unfinished=%d offsets=%s elapsed_s=%.2f",
            repositories,
            _ranges(partitions),
            deadlines,
            len(self.unfinished),
            "unknown" if committed is None else "read",
            time.monotonic() - started,
        )
        if self.unfinished:
            log.info(
                "unfinished batches partitions=%s repositories=%d", self.unfinished.partitions(), len(self.unfinished)
            )
        trim_heap()  # the recovery's buffers are freed by now: give their pages back

    async def _committed_offsets(self) -> dict[tuple[str, int], int] | None:
        """This worker's committed source offsets, retried with backoff; None if the broker does not answer."""
        delay = 0.5
        for attempt in range(5):
            try:
                return await self._fetch_committed()
            except OffsetsUnavailable as e:
                log.warning("committed offsets unavailable attempt=%d error=%s", attempt + 1, e)
                await asyncio.sleep(delay)
                delay *= 2
        return None

    async def _fetch_committed(self) -> dict[tuple[str, int], int]:
        """This worker's committed offsets of its source partitions (raises OffsetsUnavailable)."""
        group = self.settings.app_id
        partitions = [(topic, p) for topic in sorted(self.source_topics) for p in range(self.partitions)]
        committed = await asyncio.to_thread(self.offsets.committed, [group], partitions)
        return committed.get(group, {})

    def _partition_of(self, repository: str) -> int:
        return int(murmur2(repository.encode()) & 0x7FFFFFFF) % self.partitions

    async def _rewind_never_committed(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Faust drops records it fetched while a rebalance suspended the flow, then seeks each partition back to its
        committed offset, but only where one exists (aiokafka skips none and 0). A partition this group never
        committed would go on after the dropped records: a worker's first start with a table to recover lost the
        webhooks that arrived meanwhile. Such partitions start again from the beginning (a re-read is idempotent)."""
        consumer = self.app.consumer
        inputs = [tp for tp in consumer.assignment() if tp.topic in self.source_topics]
        if not inputs:
            return
        try:
            done = await self._fetch_committed()
        except OffsetsUnavailable as e:  # rewinding every partition would re-read whole topics: keep Faust's seek
            log.warning("committed offsets unavailable, no rewind error=%s", e)
            return
        fresh = [tp for tp in inputs if done.get((tp.topic, tp.partition), 0) <= 0]
        if self.settings.ordered_merge:
            await self._start_merge(inputs, done)
        if fresh:
            log.info("never committed, reading from the beginning count=%d %s", len(fresh), _by_topic(fresh))
            # In aiokafka's thread: Faust's `seek` moves the position from this one while the fetcher runs there,
            # and the fetcher crashed on it (KeyError in fetched_records), stopping the worker. Offset 0: below the
            # log start (retention), the consumer resets to the earliest.
            await consumer.seek_wait({tp: 0 for tp in fresh})

    async def _start_merge(self, inputs: Sequence[TP], committed: dict[tuple[str, int], int]) -> None:
        """Where each partition is read from (its committed offset, or its first retained one), so that the merge can
        tell a partition with nothing to read from one whose records are still to come."""
        earliest = await self.app.consumer.earliest_offsets(*inputs)
        for tp in inputs:
            start = max(committed.get((tp.topic, tp.partition), 0), earliest.get(tp) or 0)
            self.merge.start(tp.topic, tp.partition, start)

    def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """(sender, assigned TPs): the whole assignment after a rebalance, table changelogs included."""
        assigned: set[TP] = args[0]
        log.info("partitions assigned count=%d %s", len(assigned), _by_topic(assigned))

    def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """(sender, revoked TPs): partition numbers are shared by the co-partitioned inputs and the table."""
        revoked: set[TP] = args[0]
        if revoked:  # a first rebalance revokes nothing
            log.info("partitions revoked count=%d %s", len(revoked), _by_topic(revoked))
        partitions = {tp.partition for tp in revoked}
        self.store.forget(partitions)
        self.unfinished.forget(partitions)
        self.clock.forget(partitions)
        self.ends.forget(partitions)

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
            try:
                commit = resolve_commit(state, commit)
            except AmbiguousCommit as e:
                return view.json(ambiguous_document(e), status=AMBIGUOUS_STATUS)
            now = datetime.now(UTC)
            environments = {
                s.name: promotion.explain(
                    state.promotions.get(s.name) or promotion.empty(s.name, repository), s, commit, now
                )
                for s in services
                if s.promotion
            }
            return view.json(to_document(repository, commit, explain(state, commit, services), environments))

        return readiness


def _by_topic(tps: Iterable[TP]) -> str:
    """`topic=0-2,5 other=1`: one key=value per topic, its partitions as ranges."""
    partitions: dict[str, set[int]] = {}
    for tp in tps:
        partitions.setdefault(tp.topic, set()).add(tp.partition)
    return " ".join(f"{topic}={_ranges(numbers)}" for topic, numbers in sorted(partitions.items())) or "none"


def _ranges(numbers: Iterable[int]) -> str:
    """0,1,2,5 -> "0-2,5" (no spaces: a key=value log value); "none" for none."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out) or "none"


def _timestamp_ms(message: Any) -> int:
    """The record's timestamp in ms (Faust's is in seconds); a record without one sorts first."""
    timestamp = message.timestamp
    return round(timestamp * 1000) if timestamp else 0
