"""Freeze windows: times when a service must not be deployed. Pure: no I/O, the caller passes the time.

Two forms, both from the policy file:

* weekly, e.g. `Fri 18:00 - Mon 08:00` in a time zone (default UTC): repeats every week; a window whose end is
  before its start in the week wraps over the week's end;
* absolute, `from`/`to` RFC 3339 times with an offset, e.g. a holiday freeze.

A window holds `start <= now < end`. `active` gives the window that holds now and when it ends; when several hold,
the one ending last (deploys resume only when none holds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK_MINUTES: Final = 7 * 24 * 60
_WEEKLY: Final = re.compile(r"([A-Za-z]{3})\s+([01]?[0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class WeeklyWindow:
    name: str
    start_minute: int  # minutes since Monday 00:00 in `timezone`
    end_minute: int
    timezone: str = "UTC"

    def ends(self, now: datetime) -> datetime | None:
        """When this window ends if `now` (timezone-aware) is in it, else None."""
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.weekday() * 24 * 60 + local.hour * 60 + local.minute
        length = (self.end_minute - self.start_minute) % _WEEK_MINUTES
        into = (minute - self.start_minute) % _WEEK_MINUTES
        if into >= length:
            return None
        start_of_minute = local.replace(second=0, microsecond=0)
        return (start_of_minute + timedelta(minutes=length - into)).astimezone(now.tzinfo)


@dataclass(frozen=True)
class AbsoluteWindow:
    name: str
    start: datetime
    end: datetime

    def ends(self, now: datetime) -> datetime | None:
        return self.end if self.start <= now < self.end else None


FreezeWindow = WeeklyWindow | AbsoluteWindow


@dataclass(frozen=True)
class Frozen:
    window: str
    until: datetime


def parse_weekly_point(text: str) -> int:
    """`Fri 18:00` as minutes since Monday 00:00; ValueError says what is expected."""
    match = _WEEKLY.fullmatch(text.strip())
    if match is None or match[1].lower() not in DAYS:
        raise ValueError(f"must be a day and a time such as 'Fri 18:00' (days: Mon..Sun), got {text!r}")
    return DAYS.index(match[1].lower()) * 24 * 60 + int(match[2]) * 60 + int(match[3])


def parse_weekly(name: str, text: str, timezone: str = "UTC") -> WeeklyWindow:
    """`Fri 18:00 - Mon 08:00` as a weekly window."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"must be 'Day HH:MM - Day HH:MM', e.g. 'Fri 18:00 - Mon 08:00', got {text!r}")
    window = WeeklyWindow(name, parse_weekly_point(start), parse_weekly_point(end), timezone)
    if window.start_minute == window.end_minute:
        raise ValueError(f"start and end are the same time, got {text!r}")
    return window


def active(windows: tuple[FreezeWindow, ...], now: datetime) -> Frozen | None:
    """The window freezing deploys at `now` (the one ending last when several do), or None."""
    held = [(end, w.name) for w in windows if (end := w.ends(now)) is not None]
    if not held:
        return None
    end, name = max(held)
    return Frozen(name, end)
