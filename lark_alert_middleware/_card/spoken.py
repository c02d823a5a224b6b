"""Numbers, times, durations and rates as a card says them: `1,000`, `4 min`, `25 a second`."""

from __future__ import annotations

from datetime import datetime, timezone


def count(number: int) -> str:
    return f"{number:,}"


def times(number: int) -> str:
    """`once`, `twice`, `1,000 times`."""
    return {1: "once", 2: "twice"}.get(number, f"{number:,} times")


def errors(number: int) -> str:
    """`no errors`, `1 error`, `1,234 errors`."""
    return {0: "no errors", 1: "1 error"}.get(number, f"{number:,} errors")


def moment(timestamp: float) -> str:
    """`2026-01-01 14:02:11 UTC`."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(timestamp: float) -> str:
    """`14:02:11 UTC`."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%H:%M:%S UTC")


def duration(seconds: float) -> str:
    """`45 s`, `4 min`, `2 h 5 min`, `3 days`: at most two units, rounded down, at least `1 s`."""
    whole = max(1, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    days_text = "1 day" if days == 1 else f"{days:,} days"
    return f"{days_text} {hours} h" if hours and days < 7 else days_text


def rate(number: int, seconds: float) -> str:
    """`25 a second`, `3 a minute`, `12 an hour`: in the largest unit that says at least 1."""
    per_second = number / max(seconds, 1.0)
    if per_second >= 1:
        return f"{per_second:,.0f} a second"
    if per_second * 60 >= 1:
        return f"{per_second * 60:,.0f} a minute"
    return f"{max(per_second * 3600, 1):,.0f} an hour"
