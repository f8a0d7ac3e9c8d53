"""The `freeze:` lists of the policy file (global and per service), checked strictly like the rest of it.

freeze:
  - {name: weekend, weekly: "Fri 18:00 - Mon 08:00", timezone: Europe/Berlin}   # timezone: default UTC
  - {name: year-end, from: "2026-12-23T00:00:00Z", to: "2027-01-02T00:00:00Z"}
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.domain.freeze import AbsoluteWindow, FreezeWindow, parse_weekly

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_WEEKLY_KEYS: Final = frozenset({"name", "weekly", "timezone"})
_ABSOLUTE_KEYS: Final = frozenset({"name", "from", "to"})


class FreezeFieldError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def parse_freeze(value: object, field: str) -> tuple[FreezeWindow, ...]:
    if not isinstance(value, list):
        raise FreezeFieldError(field, "must be a list of windows ({name, weekly[, timezone]} or {name, from, to})")
    windows: list[FreezeWindow] = []
    for index, item in enumerate(value):
        window = _window(item, f"{field}[{index}]")
        if any(w.name == window.name for w in windows):
            raise FreezeFieldError(f"{field}[{index}].name", f"repeats {window.name!r}")
        windows.append(window)
    return tuple(windows)


def _window(item: object, field: str) -> FreezeWindow:
    if not isinstance(item, dict):
        raise FreezeFieldError(field, "must be a mapping: {name, weekly[, timezone]} or {name, from, to}")
    keys = set(item)
    allowed = _WEEKLY_KEYS if "weekly" in keys else _ABSOLUTE_KEYS
    for key in sorted(map(str, keys - allowed)):
        raise FreezeFieldError(f"{field}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(allowed - keys - {"timezone"}):
        raise FreezeFieldError(f"{field}.{key}", "is required")
    name = item["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FreezeFieldError(f"{field}.name", f"must match [a-z0-9][a-z0-9-]* (at most 63), got {name!r}")
    if "weekly" in item:
        timezone = item.get("timezone", "UTC")
        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise FreezeFieldError(f"{field}.timezone", f"unknown time zone {timezone!r}") from e
        try:
            return parse_weekly(name, str(item["weekly"]), str(timezone))
        except ValueError as e:
            raise FreezeFieldError(f"{field}.weekly", str(e)) from e
    start, end = _instant(item["from"], f"{field}.from"), _instant(item["to"], f"{field}.to")
    if end <= start:
        raise FreezeFieldError(f"{field}.to", "must be after from")
    return AbsoluteWindow(name, start, end)


def _instant(value: object, field: str) -> datetime:
    # PyYAML turns an unquoted timestamp into a datetime; a quoted one stays a string.
    expected = f"must be an RFC 3339 time such as 2026-12-23T00:00:00Z, got {value!r}"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as e:
            raise FreezeFieldError(field, expected) from e
    else:
        raise FreezeFieldError(field, expected)
    if parsed.tzinfo is None:
        raise FreezeFieldError(field, f"must carry an offset (Z or +01:00), got {value!r}")
    return parsed
