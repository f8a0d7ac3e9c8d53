"""Who signs and who verifies, on Kafka records: the producers' side (a signed structured record) and the
consumers' (a record checked against the key directory, reloaded when its file changes).

The data bytes that travel are what is digested (docs/verifiability.md): a producer signs the very bytes it writes,
and signing adds the `dssematerial` member without changing any other byte of the record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cloudevents.core.base import BaseCloudEvent

from streams.adapters.kafka_producer import Record
from streams.adapters.key_directory_file import load_key_directory, modified
from streams.domain.key_document import KeyDirectoryError, TrustConfig
from streams.domain.keys import SignaturePolicy
from streams.events.ce_wire import WireEvent, from_binary, from_sdk, from_structured, with_material_structured
from streams.events.decoding import RawRecord
from streams.events.dsse_keys import SigningKey
from streams.events.encoding import structured_record
from streams.events.verifiability import Verified, Verifier, sign
from streams.events.verification_errors import VerificationFailed
from streams.events.verification_material import MATERIAL_ATTRIBUTE

__all__ = ["DirectoryVerifier", "VerificationFailed", "signed_record", "signed_structured", "wire_event"]

log = logging.getLogger(__name__)

_STRUCTURED = "application/cloudevents"


def signed_record(event: BaseCloudEvent, topic: str, key: SigningKey | None) -> Record:
    """The structured record of `event` (its data the bytes that travel), signed by `key` when there is one. The
    material is computed from the event as built, before it is written: the record's bytes are not read back."""
    if key is None:
        return structured_record(event, topic)
    return structured_record(event, topic, {MATERIAL_ATTRIBUTE: sign(from_sdk(event), key)})


def signed_structured(value: bytes, key: SigningKey) -> bytes:
    """A structured record's value with `key`'s `dssematerial` appended; every other byte kept."""
    return with_material_structured(value, sign(from_structured(value), key))


def wire_event(record: RawRecord) -> WireEvent:
    """The record as the verifier reads it: structured mode when its content-type is a CloudEvents format."""
    headers = list(record.headers)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), b"") or b""
    if content_type.decode("latin-1").lower().startswith(_STRUCTURED):
        return from_structured(record.value or b"")
    return from_binary(headers, record.value)


class DirectoryVerifier:
    """A Verifier over the key directory file at `path`, loaded again when the file's mtime changes (looked at no
    more often than every `reload_interval_s`): subscribers learn of a new or revoked key without a restart.

    A directory that does not load at start is an error (the caller refuses to start); one that breaks later is
    logged and the last good one kept, so an editor's half-written file never opens or closes the pipeline.
    Without `require_signatures` rules in the file every event must be signed.
    """

    def __init__(
        self, path: Path, *, reload_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._interval = reload_interval_s
        self._clock = clock
        self._mtime = modified(path)
        trust = load_key_directory(path)
        self._verifier = _verifier(trust)
        self._checked = clock()
        log.info("key directory loaded path=%s keys=%d", path, len(trust.keys))

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked < self._interval:
            return
        self._checked = now
        try:
            mtime = modified(self.path)
        except OSError as e:
            log.error("key directory unreadable, keeping the last one path=%s error=%s", self.path, e)
            return
        if mtime == self._mtime:
            return
        try:
            trust = load_key_directory(self.path)
            verifier = _verifier(trust)
        except (KeyDirectoryError, ValueError) as e:
            log.error("key directory invalid, keeping the last one path=%s error=%s", self.path, e)
            return
        self._mtime, self._verifier = mtime, verifier
        log.info("key directory reloaded path=%s keys=%d", self.path, len(trust.keys))

    def verify(self, event: WireEvent, at: datetime) -> Verified | None:
        self._refresh()
        return self._verifier.verify(event, at)

    def verify_record(self, record: RawRecord, at: datetime) -> Verified | None:
        """`verify` of a Kafka record; a record that is no readable CloudEvent is a MalformedEvent."""
        self._refresh()
        return self._verifier.verify(wire_event(record), at)


def _verifier(trust: TrustConfig) -> Verifier:
    policy = trust.policy if trust.policy.rules else SignaturePolicy.everything()
    return Verifier(trust.keys, policy)
