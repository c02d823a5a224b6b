"""When the daily summary is due: a time of day in a time zone, as instants (epoch seconds).

A summary covers the period that ends when it is due and began when the previous one was due;
that end names the period (`due_after(now)` is the period errors are counted in now, and
`due_before(now)` the latest period that has ended). Days are the zone's: a summary at 09:00
Europe/Paris stays at 09:00 across daylight saving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class DailySchedule:
    at: time
    zone: ZoneInfo

    def due_before(self, now: float) -> float:
        """The latest instant at or before `now` when a summary was due."""
        day = datetime.fromtimestamp(now, self.zone).date()
        due = datetime.combine(day, self.at, tzinfo=self.zone).timestamp()
        if due > now:
            due = datetime.combine(day - timedelta(days=1), self.at, tzinfo=self.zone).timestamp()
        return due

    def due_after(self, now: float) -> float:
        """The first instant after `now` when a summary is due: the end of the period counted now."""
        day = datetime.fromtimestamp(now, self.zone).date()
        due = datetime.combine(day, self.at, tzinfo=self.zone).timestamp()
        if due <= now:
            due = datetime.combine(day + timedelta(days=1), self.at, tzinfo=self.zone).timestamp()
        return due

    def previous(self, due: float) -> float:
        """When the summary before the one due at `due` was due (a day earlier, in the zone's days)."""
        return self.due_before(due - 1.0)
