"""Dates written with Arabic month names, as some outlets put them in their feeds.

feedparser reads RFC 822 and ISO 8601 dates; an Arabic ``pubDate`` such as
``السبت، 28 نوفمبر 2026 - 10:30 م`` or ``٢٨ تشرين الثاني ٢٠٢٦ ١٠:٣٠`` is left
unparsed. :func:`parse_arabic_date` reads the three month-name families in use:

* the Egyptian and Gulf transliterations (يناير، فبراير … ديسمبر),
* the Syriac names of the Levant and Iraq (كانون الثاني، شباط … كانون الأول),
* the French-derived names of the Maghreb (جانفي، فيفري، أفريل، جوان، جويلية،
  أوت) and Morocco's (ماي، يوليوز، غشت، شتنبر، نونبر، دجنبر),

with Arabic-Indic or Latin digits, an optional time (``ص``/``م``, صباحا/مساء
for AM/PM) and an optional UTC offset after the time (``+03:00``,
``GMT+3``; a sign right after the time, as in ``10:30-12:00``, is a range,
not an offset). The time must stand next to the date (at most 16 characters
apart, no digits between), so that "updated on 29 …, 14:05" after the date
does not lend its hour; a label without a date ("updated 14:05") does.
Without an offset the time is taken as UTC: feeds rarely say which local time
they mean, and a wrong hour is better than no date. A time that cannot be
(25:00) leaves the date at midnight. Anything it cannot read fully (no day,
month and year) gives ``None``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

__all__ = ["parse_arabic_date"]

_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# Compare month names without hamza seats, tatweel or diacritics.
_LETTERS: Final = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ـ": None})
_DIACRITICS: Final = re.compile("[\u064b-\u0652\u0670]")

_MONTHS: Final[dict[str, int]] = {
    # Egypt and the Gulf
    "يناير": 1, "فبراير": 2, "مارس": 3, "ابريل": 4, "مايو": 5,
    "يونيو": 6, "يونيه": 6, "يونية": 6, "يوليو": 7, "يوليه": 7, "يولية": 7,
    "اغسطس": 8, "سبتمبر": 9,
    "اكتوبر": 10, "نوفمبر": 11, "ديسمبر": 12,
    # The Levant and Iraq
    "كانون الثاني": 1, "شباط": 2, "اذار": 3, "نيسان": 4, "ايار": 5, "حزيران": 6,
    "تموز": 7, "اب": 8, "ايلول": 9, "تشرين الاول": 10, "تشرين الثاني": 11,
    "كانون الاول": 12,
    # Algeria and Tunisia; Morocco
    "جانفي": 1, "فيفري": 2, "افريل": 4, "ماي": 5, "جوان": 6, "جويليه": 7,
    "جويلية": 7, "اوت": 8, "يوليوز": 7, "غشت": 8, "شتنبر": 9, "نونبر": 11,
    "دجنبر": 12,
}  # fmt: skip

_MONTH: Final = "|".join(sorted((re.escape(m) for m in _MONTHS), key=len, reverse=True))
_DATE: Final = re.compile(
    rf"(?<!\d)(?P<day>\d{{1,2}})\s*(?:من\s+)?(?P<month>{_MONTH})(?![\w])"
    rf"\s*[,،/-]?\s*(?P<year>\d{{4}})(?!\d)"
)
_CLOCK: Final = (
    r"(?<!\d)(?P<h>\d{1,2})[:：](?P<m>\d{2})(?:[:：](?P<s>\d{2}))?"
    r"(?:\s*(?P<ampm>صباحا|مساء|ص|م)(?![\w]))?"
    r"(?:(?:\s*(?:GMT|UTC|غرينتش|بتوقيت غرينتش)\s*|\s+)"
    r"(?P<sign>[+-])(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?)?"
)
#: What may stand between a date and its time: a separator, a weekday, "الساعة".
_NEAR: Final = r"[^\d]{0,16}?"
_TIME_AFTER: Final = re.compile(_NEAR + _CLOCK)
_TIME_BEFORE: Final = re.compile(_CLOCK + _NEAR + r"$")


def _canonical(text: str) -> str:
    text = _DIACRITICS.sub("", text.translate(_DIGITS).translate(_LETTERS))
    return " ".join(text.replace("\u200f", " ").replace("\u200e", " ").split())


def parse_arabic_date(text: str) -> datetime | None:
    """The UTC moment an Arabic date string names, or ``None`` if it has no full date."""
    canonical = _canonical(text)
    date = _DATE.search(canonical)
    if date is None:
        return None
    day, year = int(date["day"]), int(date["year"])
    month = _MONTHS[date["month"]]
    hour = minute = second = 0
    offset = timedelta(0)
    clock = _TIME_AFTER.match(canonical, date.end()) or _TIME_BEFORE.search(
        canonical[: date.start()]
    )
    if clock is not None:
        hour, minute, second = int(clock["h"]), int(clock["m"]), int(clock["s"] or 0)
        if clock["ampm"] in ("م", "مساء") and hour < 12:
            hour += 12
        elif clock["ampm"] in ("ص", "صباحا") and hour == 12:
            hour = 0
        if clock["sign"]:
            offset = timedelta(hours=int(clock["oh"]), minutes=int(clock["om"] or 0))
            if clock["sign"] == "-":
                offset = -offset
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:  # 25:00, 10:75, an offset of 30 hours: the date alone
        try:
            local = datetime(year, month, day, tzinfo=UTC)
        except ValueError:  # 31 شباط
            return None
    return local.astimezone(UTC)
