"""Dates written with Arabic month names, as some outlets put them in their feeds.

feedparser reads RFC 822 and ISO 8601 dates; an Arabic ``pubDate`` such as
``السبت، 28 نوفمبر 2026 - 10:30 م`` or ``٢٨ تشرين الثاني ٢٠٢٦ ١٠:٣٠`` is left
unparsed. :func:`parse_arabic_date` reads the three month-name families in use:

* the Egyptian and Gulf transliterations (يناير، فبراير … ديسمبر),
* the Syriac names of the Levant and Iraq (كانون الثاني، شباط … كانون الأول),
* the French-derived names of the Maghreb (جانفي، فيفري، أفريل، جوان، جويلية،
  أوت) and Morocco's (ماي، يوليوز، غشت، شتنبر، نونبر، دجنبر),

and the Hijri months (محرم، صفر، ربيع الأول … ذو الحجة, an optional هـ after
the year), converted to the Gregorian calendar with ``hijridate`` (Umm
al-Qura), with Arabic-Indic or Latin digits, an optional time (``ص``/``م``, صباحا/مساء
for AM/PM) and an optional UTC offset after the time (``+03:00``,
``GMT+3``; a sign right after the time, as in ``10:30-12:00``, is a range,
not an offset). The time must stand next to the date (at most 16 characters
apart, no digits between), so that "updated on 29 …, 14:05" after the date
does not lend its hour; a label without a date ("updated 14:05") does.
Without an offset the time is taken as UTC: feeds rarely say which local time
they mean, and a wrong hour is better than no date. A time that cannot be
(25:00) leaves the date at midnight. Anything it cannot read fully (no day,
month and year) gives ``None``.

Given the moment the text was fetched (``now``), relative dates are read too,
anchored on it: منذ 3 ساعات, منذ ساعتين, قبل 5 دقائق, منذ يومين, أمس / البارحة
(the day before, at the same time of day), اليوم. :func:`find_arabic_dates`
lists every date a text holds, for ``rasd enrich``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from hijridate import Hijri

__all__ = ["find_arabic_dates", "parse_arabic_date"]

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

#: The Hijri months, after the same canonical folds (ى → ي, hamza seats dropped).
_HIJRI_MONTHS: Final[dict[str, int]] = {
    "محرم": 1, "صفر": 2, "ربيع الاول": 3, "ربيع الثاني": 4, "ربيع الاخر": 4,
    "جمادي الاولي": 5, "جمادي الاول": 5, "جمادي الثانيه": 6, "جمادي الثانية": 6,
    "جمادي الاخره": 6, "جمادي الاخرة": 6, "رجب": 7, "شعبان": 8, "رمضان": 9, "شوال": 10,
    "ذو القعده": 11, "ذو القعدة": 11, "ذي القعدة": 11, "ذو الحجه": 12, "ذو الحجة": 12,
    "ذي الحجة": 12,
}  # fmt: skip
_HIJRI: Final = re.compile(
    r"(?<!\d)(?P<day>\d{1,2})\s*(?:من\s+)?(?P<month>"
    + "|".join(sorted((re.escape(m) for m in _HIJRI_MONTHS), key=len, reverse=True))
    + r")(?![\w])\s*[,،/-]?\s*(?P<year>1[3-5]\d\d)(?!\d)\s*(?:هـ|ه)?"
)
_UNITS: Final[dict[str, tuple[str, int]]] = {
    "ثانيه": ("seconds", 1), "ثانية": ("seconds", 1),
    "ثواني": ("seconds", 1), "ثوان": ("seconds", 1),
    "دقيقه": ("minutes", 1), "دقيقة": ("minutes", 1), "دقائق": ("minutes", 1),
    "دقيقتين": ("minutes", 2), "دقيقتان": ("minutes", 2),
    "ساعه": ("hours", 1), "ساعة": ("hours", 1), "ساعات": ("hours", 1),
    "ساعتين": ("hours", 2), "ساعتان": ("hours", 2),
    "يوم": ("days", 1), "ايام": ("days", 1), "يومين": ("days", 2), "يومان": ("days", 2),
    "اسبوع": ("weeks", 1), "اسابيع": ("weeks", 1), "اسبوعين": ("weeks", 2),
}  # fmt: skip
_RELATIVE: Final = re.compile(
    r"(?:منذ|قبل)\s+(?:(?P<n>\d{1,3})\s+)?(?P<unit>"
    + "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
    + r")(?![\w])"
)
_YESTERDAY: Final = re.compile(r"(?<![\w])(?:امس|البارحه|البارحة)(?![\w])")
_TODAY: Final = re.compile(r"(?<![\w])اليوم(?![\w])")

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


def _clock_of(canonical: str, start: int, end: int) -> tuple[int, int, int, timedelta] | None:
    clock = _TIME_AFTER.match(canonical, end) or _TIME_BEFORE.search(canonical[:start])
    if clock is None:
        return None
    hour, minute, second = int(clock["h"]), int(clock["m"]), int(clock["s"] or 0)
    if clock["ampm"] in ("م", "مساء") and hour < 12:
        hour += 12
    elif clock["ampm"] in ("ص", "صباحا") and hour == 12:
        hour = 0
    offset = timedelta(0)
    if clock["sign"]:
        offset = timedelta(hours=int(clock["oh"]), minutes=int(clock["om"] or 0))
        if clock["sign"] == "-":
            offset = -offset
    return hour, minute, second, offset


def _moment(
    year: int, month: int, day: int, clock: tuple[int, int, int, timedelta] | None
) -> datetime | None:
    hour, minute, second, offset = clock or (0, 0, 0, timedelta(0))
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:  # 25:00, 10:75, an offset of 30 hours: the date alone
        try:
            local = datetime(year, month, day, tzinfo=UTC)
        except ValueError:  # 31 شباط
            return None
    return local.astimezone(UTC)


def _gregorian_of_hijri(year: int, month: int, day: int) -> tuple[int, int, int] | None:
    try:
        g = Hijri(year, month, day).to_gregorian()
    except (ValueError, OverflowError):  # outside Umm al-Qura's range, or 30 of a 29-day month
        return None
    return g.year, g.month, g.day


def _relative(canonical: str, now: datetime) -> tuple[int, datetime] | None:
    """(position, moment) of the first relative date in ``canonical``, anchored on ``now``."""
    found: list[tuple[int, datetime]] = []
    rel = _RELATIVE.search(canonical)
    if rel is not None:
        unit, count = _UNITS[rel["unit"]]
        n = int(rel["n"]) if rel["n"] else count
        found.append((rel.start(), now - timedelta(**{unit: n})))
    yesterday = _YESTERDAY.search(canonical)
    if yesterday is not None:
        found.append((yesterday.start(), now - timedelta(days=1)))
    today = _TODAY.search(canonical)
    if today is not None:
        found.append((today.start(), now))
    return min(found, key=lambda f: f[0]) if found else None


def _dates(canonical: str, now: datetime | None) -> list[tuple[int, datetime]]:
    out: list[tuple[int, datetime]] = []
    for m in _DATE.finditer(canonical):
        when = _moment(
            int(m["year"]), _MONTHS[m["month"]], int(m["day"]),
            _clock_of(canonical, m.start(), m.end()),
        )  # fmt: skip
        if when is not None:
            out.append((m.start(), when))
    for m in _HIJRI.finditer(canonical):
        ymd = _gregorian_of_hijri(int(m["year"]), _HIJRI_MONTHS[m["month"]], int(m["day"]))
        when = _moment(*ymd, _clock_of(canonical, m.start(), m.end())) if ymd else None
        if when is not None:
            out.append((m.start(), when))
    return sorted(out, key=lambda d: d[0])


def parse_arabic_date(text: str, now: datetime | None = None) -> datetime | None:
    """The UTC moment an Arabic date string names, or ``None`` if it has no full date.

    With ``now`` (the fetch time), a relative date (منذ 3 ساعات, أمس) counts too.
    """
    canonical = _canonical(text)
    dates = _dates(canonical, now)
    if dates:
        return dates[0][1]
    if now is not None:
        found = _relative(canonical, now.astimezone(UTC))
        if found is not None:
            return found[1]
    return None


def find_arabic_dates(text: str, now: datetime | None = None) -> list[datetime]:
    """Every full date in ``text`` (Gregorian or Hijri), and with ``now`` the relative ones."""
    canonical = _canonical(text)
    found = _dates(canonical, now)
    if now is not None:
        anchor = now.astimezone(UTC)
        for pattern in (_RELATIVE, _YESTERDAY):
            for m in pattern.finditer(canonical):
                rel = _relative(m.group(0), anchor)
                if rel is not None:
                    found.append((m.start(), rel[1]))
    return [when for _, when in sorted(found, key=lambda d: d[0])]
