"""The filter language: one parser and one matcher for the app, the CLI and export. Pure.

A query is a list of terms separated by spaces; every term must match (AND)::

    service:worker            the emitting service (glob: service:api-*)
    type:job.*                the event type (glob)
    job:job_123  worker:w-1  machine:m-1  user:u-9   correlation IDs (exact, or glob: job:job_1*)
    trace:4bf9*  span:00f0*   trace and span IDs (exact or prefix*)
    level:error  level:>=warn level:<info             a level, or a comparison with one
    since:10m  until:2026-11-27T10:00                 relative (ms s m h d w, combinable: 1h30m),
    since:16:42  until:16:45:30                       ISO-8601 (UTC when no offset is given),
                                                      a time of day (UTC, as the app shows
                                                      times: the latest one, today's up to an
                                                      hour ahead), epoch milliseconds, or `now`
    data.<key>:<value>        a value inside data (nested keys with dots; `*` for "present")
    data.<key>:>10000         a number inside data: > >= < <= = (numbers sent as text count);
    data.waitMs:<=1m30s       units on fields named *Ms/*_ms (milliseconds) or *Seconds/*_seconds
    duration:>30s             any duration the event carries: data.durationMs or data.*TimeMs
    -term                     negation (any term but since/until)
    a,b                       either value: service:api-server,worker
    "a phrase"  word          free text: case-insensitive substring of the type, service,
                              IDs and data values
    /regex/  /regex/i         a regular expression over the same text

Service, type and level compare case-insensitively; IDs and data values case-sensitively.
A comparison only matches a value that is a number (or a string that reads as one, "12000"),
so ``-data.x:>5`` matches events without a numeric x as well as those where x <= 5.
Time bounds apply to the time the stream gave an event (its entry ID) when it has one, else
to its own timestamp, and compile to stream-ID bounds (:meth:`Query.stream_range`) so a reader
seeks instead of scanning. A query that cannot be parsed raises :class:`QueryError`, which
names the offending token and its offset.
"""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from emp_tui.events import (
    LEVEL_RANK,
    LEVELS,
    TelemetryEvent,
    normalize_level,
    scalar_text,
    searchable_texts,
)
from emp_tui.stream_ids import range_bounds, stream_id_ms

__all__ = [
    "Query",
    "QueryError",
    "parse_duration_ms",
    "parse_query",
    "parse_time_ms",
    "quote_value",
]

_UNIT_MS: Final[dict[str, int]] = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}
_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

# field name in the query -> attribute of TelemetryEvent
_ID_FIELDS: Final[dict[str, str]] = {
    "job": "job_id",
    "worker": "worker_id",
    "machine": "machine_id",
    "user": "user_id",
    "trace": "trace_id",
    "span": "span_id",
    "id": "id",
}
_TEXT_FIELDS: Final[dict[str, str]] = {"service": "service", "type": "event_type"}
_FIELD_ALIASES: Final[dict[str, str]] = {
    "eventtype": "type",
    "event": "type",
    "jobid": "job",
    "workerid": "worker",
    "machineid": "machine",
    "userid": "user",
    "traceid": "trace",
    "spanid": "span",
}
FIELD_ALIASES: Final = _FIELD_ALIASES
"""Other names the fields answer to (``jobId:`` is ``job:``), as the wire format spells them."""
KNOWN_FIELDS: Final = (
    "service",
    "type",
    *_ID_FIELDS,
    "level",
    "since",
    "until",
    "data.<key>",
    "duration",
)


class QueryError(ValueError):
    """A query that cannot be parsed. ``position`` is the 0-based offset of ``token``."""

    def __init__(self, message: str, position: int, token: str) -> None:
        self.message = message
        self.position = position
        self.token = token
        super().__init__(f"{message} (at position {position}: {token!r})")

    def caret(self, text: str) -> str:
        """Two lines: the query, and ``^~~~`` under the offending token."""
        width = max(1, len(self.token))
        return f"{text}\n{' ' * self.position}^{'~' * (width - 1)}"


# -- matching predicates ------------------------------------------------------------------

Predicate = Callable[[TelemetryEvent], bool]


def _glob_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _value_matcher(value: str, *, ignore_case: bool) -> Callable[[str | None], bool]:
    """Match one attribute value against ``value``: exact, or a glob when it has * or ?."""
    if "*" in value or "?" in value:
        regex = _glob_regex(value, ignore_case=ignore_case)

        def glob(candidate: str | None) -> bool:
            return candidate is not None and regex.fullmatch(candidate) is not None

        return glob
    if ignore_case:
        folded = value.casefold()

        def exact_folded(candidate: str | None) -> bool:
            return candidate is not None and candidate.casefold() == folded

        return exact_folded

    def exact(candidate: str | None) -> bool:
        return candidate == value

    return exact


def data_lookup(data: Mapping[str, Any], path: list[str]) -> tuple[bool, Any]:
    """(found, value) of the key path ``path`` inside ``data``."""
    current: Any = data
    for index, key in enumerate(path):
        if isinstance(current, Mapping):
            if key in current:
                current = current[key]
                continue
            # A key that itself contains dots ("a.b") is found whole too.
            rest = ".".join(path[index:])
            if rest in current:
                return True, current[rest]
            return False, None
        if isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
            continue
        return False, None
    return True, current


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # the raw token as written
    start: int  # offset in the query


def _tokens(text: str) -> Iterator[_Token]:
    """Split on whitespace outside quotes and outside /regex/."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] == "-" and i + 1 < n and text[i + 1] == "/":
            i += 1
        if text[i] == "/":
            j = i + 1
            while j < n and text[j] != "/":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise QueryError("unterminated /regex/", start, text[start:])
            j += 1
            while j < n and text[j].isalpha():
                j += 1
            if j < n and not text[j].isspace():
                end = j
                while end < n and not text[end].isspace():
                    end += 1
                raise QueryError("expected a space after /regex/", j, text[j:end])
            yield _Token(text[start:j], start)
            i = j
            continue
        j = i
        while j < n and not text[j].isspace():
            if text[j] == '"':
                close = j + 1
                while close < n and text[close] != '"':
                    close += 2 if text[close] == "\\" else 1
                if close >= n:
                    raise QueryError("unterminated quote", j, text[j:])
                j = close + 1
            else:
                j += 1
        yield _Token(text[start:j], start)
        i = j


def _unquote(raw: str, start: int) -> str:
    """A value that may be wholly quoted: "a b" -> a b (with \\" and \\\\ escapes)."""
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    if '"' in raw:
        raise QueryError("a quote must enclose a whole value", start + raw.index('"'), raw)
    return raw


_NEEDS_QUOTES: Final = re.compile(r'[\s",]')


def quote_value(value: str) -> str:
    """``value`` written so that a term reads it back whole: as it is when it holds no space,
    quote or comma, else quoted (the inverse of how values are read)."""
    if value and not _NEEDS_QUOTES.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_alternatives(raw: str, start: int) -> list[tuple[str, int]]:
    """``a,"b c",d`` -> [(a, offset), (b c, offset), (d, offset)]; commas inside quotes kept."""
    parts: list[tuple[str, int]] = []
    i, n = 0, len(raw)
    part_start = 0
    while i <= n:
        if i == n or raw[i] == ",":
            piece = raw[part_start:i]
            if not piece:
                raise QueryError("empty value", start + part_start, raw)
            parts.append((_unquote(piece, start + part_start), start + part_start))
            part_start = i + 1
            i += 1
        elif raw[i] == '"':
            i += 1
            while i < n and raw[i] != '"':
                i += 2 if raw[i] == "\\" else 1
            i += 1
        else:
            i += 1
    return parts


# -- time -----------------------------------------------------------------------------------


def parse_duration_ms(text: str) -> int | None:
    """``10m`` -> 600000; ``1h30m`` too. None when ``text`` is not a duration."""
    total = _duration_ms(text)
    return None if total is None else int(total)


def _duration_ms(text: str) -> float | None:
    """:func:`parse_duration_ms` without rounding down (``1.5ms`` -> 1.5)."""
    pos, total = 0, 0.0
    text = text.strip()
    if not text:
        return None
    while pos < len(text):
        found = _DURATION_PART.match(text, pos)
        if found is None:
            return None
        total += float(found.group(1)) * _UNIT_MS[found.group(2)]
        pos = found.end()
    return total


def parse_time_ms(text: str, now_ms: int) -> int | None:
    """A point in time: ``now``, a duration ago (``10m``), epoch ms, a time of day in UTC
    (``16:42``, ``16:42:05.250``; see :data:`TIME_OF_DAY_AHEAD_MS`), or ISO-8601 (UTC when
    naive). None when ``text`` is none of these."""
    if text == "now":
        return now_ms
    ago = parse_duration_ms(text)
    if ago is not None:
        return now_ms - ago
    if text.isdigit() and len(text) >= 12:
        return int(text)
    of_day = _TIME_OF_DAY.fullmatch(text)
    if of_day is not None:
        return _time_of_day_ms(of_day, now_ms)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


TIME_FORMS: Final = "10m, 2h, 1d, 16:42, an ISO-8601 date, or now"
"""The forms of a point in time, for the messages that refuse one."""
_TIME_OF_DAY: Final = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?", re.ASCII)
TIME_OF_DAY_AHEAD_MS: Final = 3_600_000
"""A time of day is taken on the day of "now", or on the day before when that would put it
more than this far after "now" (``until:16:50`` at 16:45 is today's; ``since:23:00`` at
01:00 is last night's)."""


def _time_of_day_ms(match: re.Match[str], now_ms: int) -> int | None:
    """``HH:MM[:SS[.mmm]]`` in UTC, as the app shows times, by :data:`TIME_OF_DAY_AHEAD_MS`;
    None when it is not a time of day (25:00)."""
    hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or (seconds is not None and int(seconds) > 59):
        return None
    into_day = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds or 0)) * 1000
    into_day += int((fraction or "0").ljust(3, "0"))
    day_ms = 86_400_000
    moment = now_ms - now_ms % day_ms + into_day
    if moment > now_ms + TIME_OF_DAY_AHEAD_MS:
        moment -= day_ms
    return moment


def _event_time_ms(event: TelemetryEvent) -> int:
    ms = stream_id_ms(event.id)
    return event.timestamp if ms is None else ms


# -- numbers --------------------------------------------------------------------------------

_T = TypeVar("_T")

Number = int | float
NumberTest = Callable[[Number], bool]

# Longest first: ">=" must be tried before ">".
_COMPARE: Final[dict[str, Callable[[Number, Number], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_INTEGER_TEXT: Final = re.compile(r"[+-]?\d+")
_NUMBER_TEXT: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# A field's unit, from how its name ends, as milliseconds per unit: a duration written in a
# query (2s, 1m30s) is converted into it. Other fields take plain numbers only.
_FIELD_UNITS: Final = (("Ms", 1.0), ("_ms", 1.0), ("Seconds", 1000.0), ("_seconds", 1000.0))


def _split_comparison(text: str) -> tuple[str, str] | None:
    """``>=30`` -> (">=", "30"); None when ``text`` does not start with a comparison."""
    for op in _COMPARE:
        if text.startswith(op):
            return op, text[len(op) :]
    return None


def number_value(value: Any) -> Number | None:
    """``value`` as a number: an int or a finite float, or a string that reads as one
    (``"12000"``, ``"2.5"``, as some emitters send numbers). None for anything else,
    booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        if _INTEGER_TEXT.fullmatch(value):
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def is_duration_field(key: str) -> bool:
    """Whether a data key holds how long something took, in milliseconds, for ``duration:``
    (the rule the timeline's explicit durations follow): ``durationMs``, or a name ending
    in ``TimeMs`` (``claimTimeMs``, ``startupTimeMs``, ``processingTimeMs``)."""
    return key == "durationMs" or key.endswith("TimeMs")


def _field_unit_ms(name: str) -> float | None:
    for suffix, ms in _FIELD_UNITS:
        if name.endswith(suffix):
            return ms
    return None


def _number_test(op: str, text: str, start: int, *, unit_ms: float | None, name: str) -> NumberTest:
    """The test of ``<op><text>`` (the comparison at ``start``) against a number in a field
    whose unit is ``unit_ms`` milliseconds (None: the field takes no duration units)."""
    at = start + len(op)
    if not text:
        raise QueryError(f"'{op}' needs a number after it", start, op)
    bound: Number
    if _NUMBER_TEXT.fullmatch(text):
        bound = int(text) if _INTEGER_TEXT.fullmatch(text) else float(text)
    else:
        ms = _duration_ms(text)
        if ms is None:
            wanted = "a number" if unit_ms is None else "a number or a duration (2s, 1m30s)"
            raise QueryError(
                f"'{op}' compares numbers: expected {wanted} "
                "(quote a value that starts with > < = to match it as text)",
                at,
                text,
            )
        if unit_ms is None:
            raise QueryError(
                f"'{name}' is not a duration field: units need a name ending in Ms or _ms "
                "(milliseconds) or Seconds or _seconds; compare it with a plain number",
                at,
                text,
            )
        bound = ms / unit_ms
    compare = _COMPARE[op]

    def test(number: Number) -> bool:
        return compare(number, bound)

    return test


# -- the query ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A parsed query. Build one with :func:`parse_query`."""

    text: str
    since_ms: int | None = None
    until_ms: int | None = None
    job_ids: frozenset[str] = frozenset()
    # Literal strings of which every matching event's JSON line must contain at least one,
    # per term (a cheap pre-filter for files; see required_literals()).
    _literal_sets: tuple[frozenset[str], ...] = field(default=(), repr=False, compare=False)
    _predicates: tuple[Predicate, ...] = field(default=(), repr=False, compare=False)

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()

    def matches(self, event: TelemetryEvent) -> bool:
        if self.since_ms is not None or self.until_ms is not None:
            ms = _event_time_ms(event)
            if self.since_ms is not None and ms < self.since_ms:
                return False
            if self.until_ms is not None and ms > self.until_ms:
                return False
        return all(predicate(event) for predicate in self._predicates)

    def stream_range(self) -> tuple[str, str]:
        """(start, end) IDs for XRANGE covering the time bounds."""
        return range_bounds(self.since_ms, self.until_ms)

    def required_literals(self) -> tuple[frozenset[str], ...]:
        """For each of some terms, a set of strings one of which appears verbatim in the JSON
        line of any event this query matches. A file reader may skip a line that lacks one
        of a set without decoding it. Only exact, positive job/worker/machine/user values made
        of characters no JSON encoder escapes (letters, digits, ``_.:@-``), that cannot be
        numbers written another way, are offered."""
        return self._literal_sets


_LITERAL_SAFE: Final = re.compile(r"[A-Za-z0-9_.:@-]+")


def _safe_literal(value: str) -> bool:
    """Whether ``value`` appears verbatim in any JSON that holds it as a string: no JSON
    encoder escapes letters, digits or ``_.:@-`` (Go's escapes ``<>&``, others ``/`` or any
    non-ASCII), and a value that reads as a number could be written as one, differently."""
    if not _LITERAL_SAFE.fullmatch(value):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False  # 1e3 and 1000.0 read the same: the line may spell it differently


def _level_predicate(raw: str, start: int) -> tuple[Predicate, set[str]]:
    comparison = _split_comparison(raw)
    if comparison is not None:
        op, name = comparison
        level = normalize_level(name)
        if level is None:
            raise QueryError(
                f"unknown level (use one of {', '.join(LEVELS)})", start + len(op), name
            )
        compare = _COMPARE[op]
        rank = LEVEL_RANK[level]
        accepted = {n for n, r in LEVEL_RANK.items() if compare(r, rank)}
    else:
        accepted = set()
        for value, offset in _split_alternatives(raw, start):
            level = normalize_level(value)
            if level is None:
                raise QueryError(f"unknown level (use one of {', '.join(LEVELS)})", offset, value)
            accepted.add(level)
    frozen = frozenset(accepted)

    def level_in(event: TelemetryEvent) -> bool:
        return event.level in frozen

    return level_in, set(frozen)


def parse_query(text: str, *, now_ms: int | None = None) -> Query:
    """Parse ``text``. Relative times resolve against ``now_ms`` (default: the clock)."""
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    predicates: list[Predicate] = []
    literal_sets: list[frozenset[str]] = []
    since: int | None = None
    until: int | None = None
    job_ids: set[str] = set()
    since_token: _Token | None = None

    for token in _tokens(text):
        raw, start = token.text, token.start
        negated = raw.startswith("-")
        body, body_start = (raw[1:], start + 1) if negated else (raw, start)
        if not body:
            raise QueryError("'-' must be followed by a term", start, raw)
        predicate: Predicate
        literals: frozenset[str] | None = None

        if body.startswith("/"):
            predicate = _regex_predicate(body, body_start)
        elif body.startswith('"'):
            predicate = _free_text_predicate(_unquote(body, body_start))
        elif ":" in body:
            key, _, value = body.partition(":")
            value_start = body_start + len(key) + 1
            name = _FIELD_ALIASES.get(key.lower(), key.lower())
            if not value:
                raise QueryError(f"'{key}:' needs a value", body_start, body)
            if name in ("since", "until"):
                if negated:
                    raise QueryError(f"{name}: cannot be negated", start, raw)
                moment = parse_time_ms(_unquote(value, value_start), now_ms)
                if moment is None:
                    raise QueryError(
                        f"bad time for {name}: (use {TIME_FORMS})",
                        value_start,
                        value,
                    )
                if name == "since":
                    since = moment if since is None else max(since, moment)
                    since_token = token
                else:
                    until = moment if until is None else min(until, moment)
                continue
            if name == "level":
                predicate, _levels = _level_predicate(value, value_start)
            elif name in _TEXT_FIELDS:
                predicate = _field_predicate(
                    _TEXT_FIELDS[name], _split_alternatives(value, value_start), ignore_case=True
                )
            elif name in _ID_FIELDS:
                alternatives = _split_alternatives(value, value_start)
                predicate = _field_predicate(_ID_FIELDS[name], alternatives, ignore_case=False)
                values = [alt for alt, _ in alternatives]
                if not negated and name in ("job", "worker", "machine", "user"):
                    if all(_safe_literal(v) for v in values):
                        literals = frozenset(values)
                    if name == "job" and len(values) == 1 and "*" not in values[0]:
                        job_ids.add(values[0])
            elif name.startswith("data.") and len(name) > 5:
                path = key[5:].split(".")
                if any(not part for part in path):
                    raise QueryError("empty key in data path", body_start, key)
                predicate = _data_predicate(path, value, value_start)
            elif name == "duration":
                predicate = _duration_predicate(value, value_start)
            else:
                raise QueryError(
                    f"unknown field '{key}' (known: {', '.join(KNOWN_FIELDS)}; "
                    'quote free text that holds a colon: "a:b")',
                    body_start,
                    key,
                )
        else:
            predicate = _free_text_predicate(_unquote(body, body_start))

        if negated:
            predicate = _negate(predicate)
        elif literals is not None:
            literal_sets.append(literals)
        predicates.append(predicate)

    if since is not None and until is not None and since > until and since_token is not None:
        raise QueryError("since: is later than until:", since_token.start, since_token.text)
    return Query(
        text=text,
        since_ms=since,
        until_ms=until,
        job_ids=frozenset(job_ids),
        _literal_sets=tuple(literal_sets),
        _predicates=tuple(predicates),
    )


def _negate(predicate: Predicate) -> Predicate:
    def negated(event: TelemetryEvent) -> bool:
        return not predicate(event)

    return negated


def _field_predicate(
    attr: str, alternatives: list[tuple[str, int]], *, ignore_case: bool
) -> Predicate:
    matchers = [_value_matcher(value, ignore_case=ignore_case) for value, _ in alternatives]
    if len(matchers) == 1:
        (only,) = matchers

        def one(event: TelemetryEvent) -> bool:
            return only(getattr(event, attr))

        return one

    def any_of(event: TelemetryEvent) -> bool:
        value = getattr(event, attr)
        return any(matcher(value) for matcher in matchers)

    return any_of


def _data_predicate(path: list[str], raw: str, start: int) -> Predicate:
    """``data.<path>:<raw>``: each alternative is ``*`` (present), a comparison with a
    number (``>10000``, ``<=1m30s``), or a value matched exactly or as a glob. A list
    matches when one of its items does."""
    alternatives = _split_alternatives(raw, start)
    present_only = any(value == "*" for value, _ in alternatives)
    matchers: list[Callable[[str | None], bool]] = []
    tests: list[NumberTest] = []
    unit_ms = _field_unit_ms(path[-1])
    for value, offset in alternatives:
        # A quoted alternative is text, even when it starts with > < or =.
        comparison = None if raw[offset - start] == '"' else _split_comparison(value)
        if comparison is None:
            matchers.append(_value_matcher(value, ignore_case=False))
        else:
            op, number = comparison
            tests.append(_number_test(op, number, offset, unit_ms=unit_ms, name=path[-1]))

    def data_has(event: TelemetryEvent) -> bool:
        found, value = data_lookup(event.data, path)
        if not found:
            return False
        if present_only:
            return True
        items = value if isinstance(value, list | tuple) else (value,)
        for item in items:
            if text_passes is not None:
                text = scalar_text(item)
                if text is not None and text_passes(text):
                    return True
            if number_passes is not None:
                number = number_value(item)
                if number is not None and number_passes(number):
                    return True
        return False

    text_passes = _either(matchers)
    number_passes = _either(tests)
    return data_has


def _either(tests: list[Callable[[_T], bool]]) -> Callable[[_T], bool] | None:
    """One test passing when any of ``tests`` does; None when there are none."""
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]

    def either(value: _T) -> bool:
        return any(test(value) for test in tests)

    return either


def _duration_predicate(raw: str, start: int) -> Predicate:
    """``duration:>30s``: some duration field of the event's data (:func:`is_duration_field`)
    holds a number that passes one of the comparisons; ``duration:*``: it has one."""
    present_only = False
    tests: list[NumberTest] = []
    for value, offset in _split_alternatives(raw, start):
        if value == "*":
            present_only = True
            continue
        comparison = None if raw[offset - start] == '"' else _split_comparison(value)
        if comparison is None:
            raise QueryError(
                "duration: takes a comparison, e.g. duration:>30s or duration:<=500ms "
                "(* for any duration)",
                offset,
                value,
            )
        op, number = comparison
        tests.append(_number_test(op, number, offset, unit_ms=1.0, name="duration"))

    passes = _either(tests)

    def has_duration(event: TelemetryEvent) -> bool:
        for key, value in event.data.items():
            if isinstance(key, str) and is_duration_field(key):
                number = number_value(value)
                if number is not None and (present_only or passes is None or passes(number)):
                    return True
        return False

    return has_duration


def _free_text_predicate(phrase: str) -> Predicate:
    needle = phrase.casefold()

    def contains(event: TelemetryEvent) -> bool:
        return needle in event.search_text()

    return contains


def _regex_predicate(body: str, start: int) -> Predicate:
    close = body.rindex("/")
    pattern, flags_text = body[1:close], body[close + 1 :]
    flags = 0
    for offset, flag in enumerate(flags_text):
        if flag != "i":
            raise QueryError("unknown regex flag (only i)", start + close + 1 + offset, flag)
        flags |= re.IGNORECASE
    if not pattern:
        raise QueryError("empty /regex/", start, body)
    try:
        regex = re.compile(pattern.replace("\\/", "/"), flags)
    except re.error as exc:
        raise QueryError(f"bad regex: {exc.msg}", start, body) from None

    def search(event: TelemetryEvent) -> bool:
        return any(regex.search(text) for text in searchable_texts(event))

    return search
