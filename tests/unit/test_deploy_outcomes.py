"""Outcome events: CDEvents 0.5 valid against the catalog's schemas, deterministic ids, chained to the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest

from streams import catalog
from streams.catalog import schemas
from streams.deploy.decisions import OutcomeKind, Ready
from streams.deploy.outcomes import (
    DRY_RUN_EXTENSION,
    TYPES,
    Outcome,
    Unblocked,
    outcome_id,
    outcome_record,
    purl,
    unblocked_record,
)

CATALOG = catalog.load(Path(__file__).resolve().parents[2] / "topics" / "catalog.yaml")
READY = Ready("evt-1", "chain-1", "shop", "github.com/acme/shop", "c" * 40, "main", "registry.example/shop:new")
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("kind", get_args(OutcomeKind))
@pytest.mark.parametrize("dry_run", [False, True])
def test_every_outcome_matches_its_catalog_schema(kind: OutcomeKind, dry_run: bool) -> None:
    outcome = Outcome(kind, READY, "shop", "web", "production", "registry.example/shop:old", "why", dry_run)
    record = outcome_record(outcome, "deploy.events", NOW)
    event = json.loads(record.value)
    declared = CATALOG.topic("deploy.events").event_type(event["type"])
    assert declared is not None and event["type"] == TYPES[kind]
    assert schemas.data_errors(declared, event["data"]) == []
    assert record.key == b"shop"
    assert event["id"] == event["data"]["context"]["id"] == outcome_id("evt-1", kind, dry_run=dry_run)
    assert event["data"]["context"]["chainId"] == "chain-1"
    assert event["data"]["context"]["links"] == [
        {"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": "evt-1"}}
    ]
    assert event["data"]["subject"]["id"] == "shop/web"
    assert (event.get(DRY_RUN_EXTENSION) == "true") is dry_run


def test_service_events_carry_environment_and_purl() -> None:
    outcome = Outcome("rolledback", READY, "shop", "web", "staging", "registry.example/shop:old", "deadline")
    data = json.loads(outcome_record(outcome, "deploy.events", NOW).value)["data"]
    assert data["subject"]["content"] == {
        "environment": {"id": "staging"},
        "artifactId": "pkg:oci/shop@old?repository_url=registry.example/shop",
    }
    assert data["customData"]["reason"] == "deadline"
    assert data["customData"]["failedImage"] == READY.image


def test_failed_and_blocked_carry_the_reason() -> None:
    for kind in ("failed", "blocked"):
        outcome = Outcome(kind, READY, "shop", "web", "production", READY.image, "403 Forbidden")
        content = json.loads(outcome_record(outcome, "t", NOW).value)["data"]["subject"]["content"]
        assert content["reason"] == "403 Forbidden"
        assert content["commit"] == READY.commit


def test_ids_are_deterministic_and_distinct() -> None:
    assert outcome_id("evt-1", "upgraded") == outcome_id("evt-1", "upgraded")
    ids = {outcome_id("evt-1", k) for k in get_args(OutcomeKind)} | {outcome_id("evt-1", "upgraded", dry_run=True)}
    assert len(ids) == len(get_args(OutcomeKind)) + 1


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/acme/shop:abc", "pkg:oci/shop@abc?repository_url=ghcr.io/acme/shop"),
        ("localhost:5000/shop", "pkg:oci/shop@latest?repository_url=localhost:5000/shop"),
        (
            "ghcr.io/acme/shop:v1@sha256:" + "a" * 64,
            f"pkg:oci/shop@sha256%3A{'a' * 64}?repository_url=ghcr.io/acme/shop&tag=v1",
        ),
    ],
)
def test_purl(image: str, expected: str) -> None:
    assert purl(image) == expected


def test_a_variant_keeps_two_outcomes_of_one_kind_apart() -> None:
    frozen = Outcome("blocked", READY, "shop", "web", "production", READY.image, "freeze", variant="freeze")
    assert frozen.event_id != outcome_id("evt-1", "blocked")
    assert frozen.event_id == outcome_id("evt-1", "blocked", variant="freeze")


def test_unblocked_matches_its_schema_and_is_one_per_opening() -> None:
    cleared = Unblocked("shop", "shop", "web", "production", "evt-1", "chain-1", 3)
    event = json.loads(unblocked_record(cleared, "deploy.events", NOW).value)
    declared = CATALOG.topic("deploy.events").event_type(event["type"])
    assert declared is not None and schemas.data_errors(declared, event["data"]) == []
    assert event["data"]["context"]["chainId"] == "chain-1"
    assert "3 consecutive failed rollouts" in event["data"]["subject"]["content"]["reason"]
    assert event["id"] == Unblocked("shop", "shop", "web", "production", "evt-1", "other", 4).event_id
