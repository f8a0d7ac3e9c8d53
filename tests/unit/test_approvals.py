"""Approvals: a fact only when signed by a key the directory trusts, the key's id naming the approver."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams import catalog
from streams.adapters.kafka_producer import Record
from streams.cli import main
from streams.config import REPO_ROOT
from streams.domain.facts import Approved
from streams.events.approvals import Approval, approval_record
from streams.events.decoding import RawRecord, Undecodable
from streams.events.signing import DirectoryVerifier
from streams.worker.event_facts import verified_facts
from tests.support.signing import FORGER, TEST_KEY, directory_entry, named_key, write_directory

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
GATES = CAT.topic("deploy.gates")
COMMIT = "a" * 40
ALICE = named_key("alice@example.com")
APPROVAL = Approval("shop", "production", "github.com/acme/shop", COMMIT, "mallory", "looks good")


def raw(record: Record) -> RawRecord:
    return RawRecord(record.topic, 0, 7, record.key, record.value, tuple(record.headers), datetime.now(UTC))


def test_a_signed_approval_names_the_key_not_the_words(tmp_path: Path) -> None:
    directory = write_directory(tmp_path / "d.yaml", directory_entry(ALICE, types=["*approval*"]))
    record = approval_record(APPROVAL, GATES.name, signer=ALICE)
    assert record.key == b"github.com/acme/shop"  # the join's key
    [fact] = verified_facts(raw(record), GATES, datetime.now(UTC), DirectoryVerifier(directory))
    assert isinstance(fact, Approved)
    assert (fact.approver, fact.service, fact.environment, fact.commit) == (
        "alice@example.com",
        "shop",
        "production",
        COMMIT,
    )


@pytest.mark.parametrize("signer", [None, FORGER], ids=["unsigned", "unknown key"])
def test_an_unsigned_or_unknown_key_approval_is_no_fact(tmp_path: Path, signer: object) -> None:
    directory = write_directory(tmp_path / "d.yaml", directory_entry(ALICE))
    record = approval_record(APPROVAL, GATES.name, signer=signer)  # type: ignore[arg-type]
    with pytest.raises(Undecodable, match="signature"):
        verified_facts(raw(record), GATES, datetime.now(UTC), DirectoryVerifier(directory))


def test_a_key_not_allowed_to_approve_is_refused(tmp_path: Path) -> None:
    """The directory can keep a process's key (the webhook server's, say) from approving anything."""
    directory = write_directory(tmp_path / "d.yaml", directory_entry(TEST_KEY, types=["com.github.*"]))
    record = approval_record(APPROVAL, GATES.name, signer=TEST_KEY)
    with pytest.raises(Undecodable, match="signature"):
        verified_facts(raw(record), GATES, datetime.now(UTC), DirectoryVerifier(directory))


def test_approving_twice_is_one_fact() -> None:
    first = approval_record(APPROVAL, GATES.name, signer=ALICE)
    again = approval_record(APPROVAL, GATES.name, datetime(2030, 1, 1, tzinfo=UTC), signer=ALICE)
    assert first.value != again.value and APPROVAL.event_id == Approval(*vars(APPROVAL).values()).event_id


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["approve", "shop", COMMIT, "--env", "production"], "has no environment 'production' that requires approval"),
        (["approve", "nope", COMMIT, "--env", "production"], "no service 'nope'"),
    ],
)
def test_approve_refuses_what_the_policy_does_not_ask_for(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2  # the demo policy has one environment per service: nothing to approve
    assert message in capsys.readouterr().err
