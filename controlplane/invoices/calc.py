"""Pure invoicing math: the lines of one tenant's invoice for one period, its tax and total.

No I/O. Rates are exact (integer micro-units, the tax rate a decimal string); every line and
the tax are rounded half-up to the cent (Stripe charges cents); quantities are exact until that
one rounding. The rules are written out in docs/invoices.md, which the e2e test recomputes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from math import gcd
from zoneinfo import ZoneInfo

from controlplane.invoices.models import (
    BillingTerms,
    ClassSeconds,
    Computed,
    InvoiceLine,
    LineKind,
    OneTimeCharge,
    Tax,
    UnitKind,
    UnitSpan,
)

MICROS_PER_CENT = 10_000
# The order in which the included minutes are consumed, and the minute lines' order.
MINUTE_CLASSES: tuple[tuple[str, LineKind], ...] = (
    ("local", LineKind.MINUTES_LOCAL),
    ("toll_free", LineKind.MINUTES_TOLL_FREE),
    ("international", LineKind.MINUTES_INTERNATIONAL),
)


def round_half_up_cents(amount_micros: Fraction | int) -> int:
    """An exact amount in micros, rounded half away from zero to a whole cent (in micros)."""
    if isinstance(amount_micros, int):
        num, den = amount_micros, 1
    else:
        num, den = amount_micros.numerator, amount_micros.denominator
    return ratio_cents(num, den)


def ratio_cents(num: int, den: int) -> int:
    """num/den micros rounded half away from zero to a whole cent, in integers only (den > 0)."""
    cents, rest = divmod(abs(num), den * MICROS_PER_CENT)
    if 2 * rest >= den * MICROS_PER_CENT:
        cents += 1
    return (-cents if num < 0 else cents) * MICROS_PER_CENT


def parse_rate_percent(text: str) -> Decimal:
    """A tax rate in percent as an exact decimal ("8.5"); ValueError unless 0 <= rate <= 100
    with at most 4 decimals."""
    try:
        rate = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError("not a decimal number") from None
    if not rate.is_finite() or rate < 0 or rate > 100:
        raise ValueError("must be between 0 and 100")
    exponent = rate.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise ValueError("at most 4 decimal places")
    return rate


def period_days(start: datetime, end: datetime, timezone: str) -> tuple[date, int]:
    """The first calendar day (in the tenant's time zone) of the period [start, end) and how many
    days it has (a day the period only begins counts whole)."""
    tz = ZoneInfo(timezone)
    first = start.astimezone(tz).date()
    local_end = end.astimezone(tz)
    last_excl = local_end.date()
    if local_end.time() != datetime.min.time():
        last_excl += timedelta(days=1)
    return first, (last_excl - first).days


def _day_range(span: UnitSpan, first_day: date, n_days: int, start: datetime, end: datetime,
               tz: ZoneInfo) -> tuple[int, int] | None:
    """The indexes [lo, hi) of the period's days on which the unit belonged to the tenant at any moment."""
    lo = span.start if span.start > start else start
    hi = end if span.end is None or span.end > end else span.end
    if hi <= lo:
        return None
    first = 0 if lo == start else (lo.astimezone(tz).date() - first_day).days
    # The end is exclusive: a unit removed at 00:00 is not present on that day.
    last = n_days - 1 if hi == end else ((hi - _TICK).astimezone(tz).date() - first_day).days
    first, last = max(first, 0), min(last, n_days - 1)
    return (first, last + 1) if first <= last else None


_TICK = timedelta(microseconds=1)


def excess_unit_days(spans: Iterable[UnitSpan], kinds: Sequence[UnitKind], included: int,
                     first_day: date, n_days: int, start: datetime, end: datetime,
                     timezone: str) -> dict[UnitKind, int]:
    """Per kind, the unit-days above the included quantity: on each day the included units cover
    the kinds in ``kinds`` order (standard DIDs before toll-free), the rest are billed that day."""
    tz = ZoneInfo(timezone)
    excess = {k: 0 for k in kinds}
    # per kind, how many units arrive (+) or leave (-) at each day index; counts are constant
    # between two such indexes, so the days are counted segment by segment
    changes: dict[int, dict[UnitKind, int]] = {0: {}, n_days: {}}
    for span in spans:
        if span.kind not in excess:
            continue
        found = _day_range(span, first_day, n_days, start, end, tz)
        if found is not None:
            for index, step in ((found[0], span.count), (found[1], -span.count)):
                at = changes.setdefault(index, {})
                at[span.kind] = at.get(span.kind, 0) + step
    present = {k: 0 for k in kinds}
    marks = sorted(changes)
    for here, following in zip(marks, marks[1:]):
        for k, step in changes[here].items():
            present[k] += step
        left = included
        for k in kinds:
            covered = min(left, present[k])
            left -= covered
            excess[k] += (present[k] - covered) * (following - here)
    return excess


def quantity_text(num: int, den: int) -> str:
    """num/den as a decimal string: exact when it terminates, else half-up to 4 places (the
    amount is computed from the exact ratio, never from this text)."""
    whole, rest = divmod(num, den)
    if rest == 0:
        return str(whole)
    if den == 60 and num > 0 and rest % 3 == 0:  # minutes: terminates in 2 places (the job's hot path)
        return f"{whole}.{rest * 5 // 3:02d}".rstrip("0")
    d = den // gcd(num, den)
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:
        return format(Decimal(num) / Decimal(den), "f")
    scaled, rest = divmod(num * 10_000, den)
    if 2 * rest >= den:
        scaled += 1
    return f"{scaled // 10_000}.{scaled % 10_000:04d}"


def _money(micros: int) -> str:
    return f"{Decimal(micros) / 1_000_000:.2f}"


def _unit_line(kind: LineKind, label: str, unit_days: int, n_days: int, rate: int, included: int) -> InvoiceLine | None:
    if unit_days == 0:
        return None
    amount = ratio_cents(unit_days * rate, n_days)
    whole = unit_days % n_days == 0
    detail = (f"{unit_days // n_days} x {_money(rate)}" if whole
              else f"{_money(rate)} x {unit_days}/{n_days} unit-days")
    return InvoiceLine(kind.value, f"{label} above the {included} included: {detail}",
                       quantity_text(unit_days, n_days), rate, amount)


def usage_lines(terms: BillingTerms, spans: Sequence[UnitSpan], minutes: Sequence[ClassSeconds],
                start: datetime, end: datetime, timezone: str) -> list[InvoiceLine]:
    """Base fee, units above the included ones (prorated by day) and minutes above the included ones."""
    lines = list(fixed_lines(terms, spans, start, end, timezone))
    lines.extend(minute_lines(terms, minutes))
    return lines


def fixed_lines(terms: BillingTerms, spans: Sequence[UnitSpan], start: datetime, end: datetime,
                timezone: str) -> tuple[InvoiceLine, ...]:
    """The base fee and the unit lines (prorated by day)."""
    first_day, n = period_days(start, end, timezone)
    lines: list[InvoiceLine] = []
    if terms.base_fee_micros:
        lines.append(InvoiceLine(LineKind.BASE_FEE.value, f"{terms.profile_name or 'Plan'} base fee", "1",
                                 terms.base_fee_micros, round_half_up_cents(terms.base_fee_micros)))
    ext = excess_unit_days(spans, (UnitKind.EXTENSION,), terms.included_extensions, first_day, n, start, end,
                           timezone)
    dids = excess_unit_days(spans, (UnitKind.DID_LOCAL, UnitKind.DID_TOLL_FREE), terms.included_dids,
                            first_day, n, start, end, timezone)
    for line in (
        _unit_line(LineKind.EXTENSIONS, "Extensions", ext[UnitKind.EXTENSION], n, terms.extension_micros,
                   terms.included_extensions),
        _unit_line(LineKind.DIDS_LOCAL, "Phone numbers", dids[UnitKind.DID_LOCAL], n, terms.did_local_micros,
                   terms.included_dids),
        _unit_line(LineKind.DIDS_TOLL_FREE, "Toll-free numbers", dids[UnitKind.DID_TOLL_FREE], n,
                   terms.did_toll_free_micros, terms.included_dids),
    ):
        if line is not None:
            lines.append(line)
    return tuple(lines)


def _class_rate(terms: BillingTerms, call_class: str) -> int:
    specific = {"local": terms.local_per_minute_micros, "toll_free": terms.toll_free_per_minute_micros,
                "international": terms.international_per_minute_micros}.get(call_class)
    return terms.per_minute_micros if specific is None else specific


@lru_cache(maxsize=1024)
def _minute_plan(terms: BillingTerms) -> tuple[str, tuple[tuple[str, str, int, str, str], ...]]:
    """Per terms (a job has a few): the included line's text and, per class in MINUTE_CLASSES
    order, (class, line kind, rate, text before the quantity, text after it)."""
    included = f"Minutes included ({terms.included_minutes} min in the plan)"
    return included, tuple(
        (cls, kind.value, rate, f"Minutes ({cls.replace('_', '-')}) above the included: ",
         f" min x {_per_minute_text(rate)} /min")
        for cls, kind in MINUTE_CLASSES for rate in (_class_rate(terms, cls),))


def minute_lines(terms: BillingTerms, minutes: Sequence[ClassSeconds]) -> list[InvoiceLine]:
    """The included minutes (one zero line) then, per class, the minutes above them at the class's rate.
    The included minutes are consumed in MINUTE_CLASSES order."""
    seconds: dict[str, int] = {}
    for c in minutes:
        seconds[c.call_class] = seconds.get(c.call_class, 0) + c.seconds
    included_text, plan = _minute_plan(terms)
    total = 0
    for cls, *_ in plan:
        total += seconds.get(cls, 0)
    if total == 0:
        return []
    left = terms.included_minutes * 60
    lines: list[InvoiceLine] = []
    if terms.included_minutes:
        lines.append(InvoiceLine(LineKind.MINUTES_INCLUDED.value, included_text,
                                 quantity_text(min(left, total), 60), 0, 0))
    for cls, kind, rate, before, after in plan:
        s = seconds.get(cls, 0)
        covered = min(left, s)
        left -= covered
        over = s - covered
        if over == 0:
            continue
        quantity = quantity_text(over, 60)
        lines.append(InvoiceLine(kind, before + quantity + after, quantity, rate, ratio_cents(over * rate, 60)))
    return lines


@lru_cache(maxsize=1024)
def _per_minute_text(rate: int) -> str:
    return str(Decimal(rate) / 1_000_000)


def one_time_lines(charges: Sequence[OneTimeCharge]) -> list[InvoiceLine]:
    return [InvoiceLine(c.kind.value, c.description, c.quantity, c.amount_micros, round_half_up_cents(c.amount_micros))
            for c in charges]


def tax_micros(taxable_micros: int, tax: Tax | None) -> int:
    if tax is None or taxable_micros <= 0:
        return 0
    num, den = _rate_ratio(tax.rate_percent)
    return ratio_cents(taxable_micros * num, den * 100)


@lru_cache(maxsize=1024)
def _rate_ratio(rate_percent: str) -> tuple[int, int]:
    # a job taxes thousands of invoices at a handful of rates: each parsed once
    return parse_rate_percent(rate_percent).as_integer_ratio()


def compute(lines: Sequence[InvoiceLine], credits_micros: int, tax: Tax | None) -> Computed:
    """Subtotal, credit, tax and total: credits (refunded usage, adjustments) reduce the subtotal down
    to zero at most (what is left over stays for the next invoice); tax is on the credited subtotal."""
    charged = sum([line.amount_micros for line in lines])
    # most invoices have no credit: no rounding, no copy of the lines for it
    applied = min(round_half_up_cents(credits_micros), max(0, charged)) if credits_micros > 0 else 0
    if applied:
        all_lines = (*lines, InvoiceLine(LineKind.CREDIT.value, "Credit", "1", -applied, -applied))
    else:
        all_lines = tuple(lines)
    subtotal = charged - applied
    taxed = tax_micros(subtotal, tax)
    return Computed(all_lines, subtotal, taxed, subtotal + taxed, applied)


def due_at(issued_at: datetime, net_terms_days: int) -> datetime:
    return (issued_at + timedelta(days=net_terms_days)).astimezone(UTC)
