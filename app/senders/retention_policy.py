"""How long a consent record is held (CR-2, Ordinance 4(2)): the legal minimums and the arithmetic.

Kept free of database and web imports so that the senders API can validate a retention policy
with the same numbers the purge uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

# "One month after the day sending stops": no month is longer than 31 days.
LEGAL_MINIMUM_DAYS = 31
# "One year" if the sender received a measures order (措置命令): 366 covers a leap year.
MEASURES_ORDER_MINIMUM_DAYS = 366
# Three years after the last send, which also covers the Specified Commercial Transactions Act.
DEFAULT_RETENTION_DAYS = 1095
# A bound that keeps the date arithmetic far from year 9999.
MAXIMUM_RETENTION_DAYS = 36_500

# The law counts days in Japan.
JST = timezone(timedelta(hours=9), "JST")


def minimum_retention_days(under_measures_order: bool) -> int:
    """CR-2: the shortest hold the Ordinance allows for this sender."""
    return MEASURES_ORDER_MINIMUM_DAYS if under_measures_order else LEGAL_MINIMUM_DAYS


def hold_days(retention_days: int, under_measures_order: bool) -> int:
    """CR-2: the sender's policy, never below the legal minimum (even if a stored policy were)."""
    return max(retention_days, minimum_retention_days(under_measures_order))


def end_of_day_jst(moment: datetime) -> datetime:
    """The first instant after the Japanese calendar day ``moment`` falls on, in UTC."""
    next_day = moment.astimezone(JST).date() + timedelta(days=1)
    return datetime.combine(next_day, time(0, tzinfo=JST)).astimezone(UTC)


def hold_until(base: datetime, retention_days: int, under_measures_order: bool) -> datetime:
    """CR-2: a record whose sending stopped at ``base`` is held through the whole (Japanese)
    day that falls ``hold_days`` after it; the purge may remove it only after that."""
    return end_of_day_jst(base + timedelta(days=hold_days(retention_days, under_measures_order)))
