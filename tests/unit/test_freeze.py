"""Freeze windows: weekly and absolute, and the policy file's `freeze:` lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.domain.freeze import AbsoluteWindow, Frozen, active, parse_weekly
from streams.domain.policy_document import PolicyError, parse_policies

WEEKEND = parse_weekly("weekend", "Fri 18:00 - Mon 08:00")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (datetime(2026, 5, 1, 17, 59, tzinfo=UTC), None),  # a Friday, just before
        (datetime(2026, 5, 1, 18, 0, tzinfo=UTC), datetime(2026, 5, 4, 8, 0, tzinfo=UTC)),
        (datetime(2026, 5, 3, 12, 30, 15, tzinfo=UTC), datetime(2026, 5, 4, 8, 0, tzinfo=UTC)),  # wraps the week
        (datetime(2026, 5, 4, 8, 0, tzinfo=UTC), None),  # the end is not in the window
        (datetime(2026, 5, 6, 12, 0, tzinfo=UTC), None),
    ],
)
def test_weekly_window(now: datetime, until: datetime | None) -> None:
    assert WEEKEND.ends(now) == until


def test_weekly_window_in_a_time_zone() -> None:
    nightly = parse_weekly("berlin-evening", "Wed 18:00 - Wed 20:00", "Europe/Berlin")
    # 17:30 UTC is 19:30 in Berlin in summer (UTC+2): inside, ending 18:00 UTC.
    assert nightly.ends(datetime(2026, 7, 1, 17, 30, tzinfo=UTC)) == datetime(2026, 7, 1, 18, 0, tzinfo=UTC)
    assert nightly.ends(datetime(2026, 7, 1, 18, 30, tzinfo=UTC)) is None


def test_the_window_ending_last_wins() -> None:
    now = datetime(2026, 5, 2, tzinfo=UTC)
    holiday = AbsoluteWindow("holiday", datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 10, tzinfo=UTC))
    assert active((WEEKEND, holiday), now) == Frozen("holiday", datetime(2026, 5, 10, tzinfo=UTC))
    assert active((WEEKEND,), datetime(2026, 5, 6, tzinfo=UTC)) is None


def policy_doc(**service: Any) -> dict[str, Any]:
    shop = {
        "repository": "acme/shop",
        "branch": "main",
        "required_checks": [{"circleci": "build"}],
        "image": "ghcr.io/acme/shop:{sha}",
        "kubernetes": {"namespace": "shop", "deployment": "shop", "container": "app"},
        **service,
    }
    return {"services": {"shop": shop}}


def test_policy_freeze_lists_merge_global_and_per_service() -> None:
    doc = policy_doc(
        freeze=[{"name": "year-end", "from": "2026-12-23T00:00:00Z", "to": datetime(2027, 1, 2, tzinfo=UTC)}],
        max_failed_rollouts=2,
    )
    doc["freeze"] = [{"name": "weekend", "weekly": "Fri 18:00 - Mon 08:00", "timezone": "Europe/Berlin"}]
    shop = parse_policies(doc, "autodeploy.yaml").service("shop")
    assert [w.name for w in shop.freeze] == ["weekend", "year-end"]
    assert shop.max_failed_rollouts == 2
    frozen = shop.frozen(datetime(2026, 12, 24, 12, tzinfo=UTC))
    assert frozen == Frozen("year-end", datetime(2027, 1, 2, tzinfo=UTC))
    assert parse_policies(policy_doc(), "f").service("shop").max_failed_rollouts == 3


@pytest.mark.parametrize(
    ("service", "field", "problem"),
    [
        ({"freeze": {"name": "x"}}, "services.shop.freeze", "must be a list"),
        ({"freeze": [{"name": "x", "weekly": "Fri 18:00"}]}, "services.shop.freeze[0].weekly", "Day HH:MM - Day"),
        ({"freeze": [{"name": "x", "weekly": "Fry 18:00 - Mon 08:00"}]}, "services.shop.freeze[0].weekly", "Mon..Sun"),
        (
            {"freeze": [{"name": "x", "weekly": "Fri 18:00 - Mon 08:00", "timezone": "Mars/Base"}]},
            "services.shop.freeze[0].timezone",
            "unknown time zone",
        ),
        ({"freeze": [{"name": "x", "from": "2026-12-23T00:00:00"}]}, "services.shop.freeze[0].to", "is required"),
        (
            {"freeze": [{"name": "x", "from": "2026-12-23T00:00:00", "to": "2026-12-24T00:00:00Z"}]},
            "services.shop.freeze[0].from",
            "offset",
        ),
        (
            {"freeze": [{"name": "x", "from": "2026-12-24T00:00:00Z", "to": "2026-12-23T00:00:00Z"}]},
            "services.shop.freeze[0].to",
            "after from",
        ),
        ({"freeze": [{"name": "x", "weekly": "Fri 18:00 - Mon 08:00", "until": 1}]}, "freeze[0].until", "unknown"),
        ({"freeze": [{"name": "Bad Name", "weekly": "Fri 18:00 - Mon 08:00"}]}, "freeze[0].name", "must match"),
        ({"max_failed_rollouts": 0}, "services.shop.max_failed_rollouts", "from 1 to 100"),
        ({"max_failed_rollouts": True}, "services.shop.max_failed_rollouts", "from 1 to 100"),
    ],
)
def test_bad_freeze_and_circuit_settings_name_the_field(service: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policies(policy_doc(**service), "autodeploy.yaml")
    assert raised.value.field.endswith(field)
    assert problem in raised.value.problem
