"""The partitions' ends as the merge sees them: an end counts only from a look made at or after the time asked for,
the look's time is taken before its request goes out, and a failed look is asked again."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from faust.types import TP

from streams.worker.log_ends import LogEnds, LookUpFailed

GITHUB, CI = TP("github", 3), TP("ci", 3)


class Broker:
    """Log ends that move while a look is on its way, as appends do."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.ends = {GITHUB: 5, CI: 7}
        self.requests: list[list[TP]] = []
        self.fail = False

    async def look_up(self, tps: Sequence[TP]) -> Mapping[TP, int]:
        self.requests.append(list(tps))
        self.clock[0] += 0.05  # the round trip: the answer covers the records appended until the request went out
        if self.fail:
            raise LookUpFailed("broker down")
        return {tp: self.ends[tp] for tp in tps}


def ends_at(start_s: float) -> tuple[LogEnds, Broker, list[float]]:
    clock = [start_s]
    broker = Broker(clock)
    return LogEnds(broker.look_up, clock=lambda: clock[0]), broker, clock


def test_an_end_is_unknown_until_looked_up_then_known_from_a_look_made_at_or_after_the_time_asked() -> None:
    ends, broker, clock = ends_at(10.0)
    assert ends.end(GITHUB, 9_000) is None
    assert ends.end(CI, 9_000) is None
    asyncio.run(ends.look_once())
    assert broker.requests == [[CI, GITHUB]]  # one request for every partition asked for
    assert (ends.end(GITHUB, 10_000), ends.end(CI, 10_000)) == (5, 7)
    # The look was made at 10.000 s (before its request went out), not at 10.050 s when the answer came.
    assert ends.end(GITHUB, 10_001) is None
    broker.ends[GITHUB] = 6
    clock[0] = 11.0
    asyncio.run(ends.look_once())
    assert broker.requests[-1] == [GITHUB]
    assert ends.end(GITHUB, 11_000) == 6
    assert ends.end(CI, 10_000) == 7 and ends.looks == 2


def test_a_failed_look_is_asked_again_and_answers_nothing_meanwhile() -> None:
    ends, broker, _ = ends_at(10.0)
    broker.fail = True
    assert ends.end(GITHUB, 9_000) is None
    asyncio.run(ends.look_once())
    assert ends.end(GITHUB, 0) is None
    broker.fail = False
    asyncio.run(ends.look_once())
    assert ends.end(GITHUB, 10_000) == 5
    assert broker.requests == [[GITHUB], [GITHUB]]


def test_revoked_partitions_are_forgotten() -> None:
    ends, broker, _ = ends_at(10.0)
    other = TP("github", 4)
    broker.ends[other] = 2
    ends.end(GITHUB, 0)
    ends.end(other, 0)
    asyncio.run(ends.look_once())
    ends.forget([3])
    assert ends.end(GITHUB, 0) is None
    assert ends.end(other, 0) == 2


@pytest.mark.timeout(5)
def test_run_looks_up_what_is_asked_while_it_runs() -> None:
    ends, broker, _ = ends_at(10.0)

    async def scenario() -> int | None:
        task = asyncio.create_task(ends.run())
        await asyncio.sleep(0)
        ends.end(CI, 10_000)
        for _ in range(100):
            await asyncio.sleep(0.001)
            if (end := ends.end(CI, 10_000)) is not None:
                task.cancel()
                return end
        task.cancel()
        return None

    assert asyncio.run(scenario()) == 7
    assert broker.requests[0] == [CI]
