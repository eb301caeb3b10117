"""The filter language: one parser and one matcher for the app, the CLI and export. Pure.

A query is a list of terms separated by spaces; every term must match (AND)::

    service:worker            the emitting service (glob: service:api-*)
    type:job.*                the event type (glob)
    job:job_123  worker:w-1  machine:m-1  user:u-9   correlation IDs (exact, or glob: job:job_1*)
    trace:4bf9*  span:00f0*   trace and span IDs (exact or prefix*)
    level:error  level:>=warn level:<info             a level, or a comparison with one
    since:10m  until:2026-11-27T10:00                 relative (ms s m h d w, combinable: 1h30m),
                                                      ISO-8601 (UTC when no offset is given),
                                                      epoch milliseconds, or `now`
    data.<key>:<value>        a value inside data (nested keys with dots; `*` for "present")
    -term                     negation (any term but since/until)
    a,b                       either value: service:api-server,worker
    "a phrase"  word          free text: case-insensitive substring of the type, service,
                              IDs and data values
    /regex/  /regex/i         a regular expression over the same text

Service, type and level compare case-insensitively; IDs and data values case-sensitively.
Time bounds apply to the time the stream gave an event (its entry ID) when it has one, else
to its own timestamp, and compile to stream-ID bounds (:meth:`Query.stream_range`) so a reader
seeks instead of scanning. A query that cannot be parsed raises :class:`QueryError`, which
names the offending token and its offset.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from emp_tui.events import (
    LEVEL_RANK,
    LEVELS,
    TelemetryEvent,
    normalize_level,
    scalar_text,
    searchable_texts,
)
from emp_tui.stream_ids import range_bounds, stream_id_ms

__all__ = ["Query", "QueryError", "parse_duration_ms", "parse_query", "parse_time_ms"]

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
KNOWN_FIELDS: Final = (
    "service",
    "type",
    *_ID_FIELDS,
    "level",
    "since",
    "until",
    "data.<key>",
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


def _data_lookup(data: Mapping[str, Any], path: list[str]) -> tuple[bool, Any]:
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
    return int(total)


def parse_time_ms(text: str, now_ms: int) -> int | None:
    """A point in time: ``now``, a duration ago (``10m``), epoch ms, or ISO-8601 (UTC when
    naive). None when ``text`` is none of these."""
    if text == "now":
        return now_ms
    ago = parse_duration_ms(text)
    if ago is not None:
        return now_ms - ago
    if text.isdigit() and len(text) >= 12:
        return int(text)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _event_time_ms(event: TelemetryEvent) -> int:
    ms = stream_id_ms(event.id)
    return event.timestamp if ms is None else ms


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
    for op in (">=", "<=", ">", "<", "="):
        if raw.startswith(op):
            name = raw[len(op) :]
            level = normalize_level(name)
            if level is None:
                raise QueryError(
                    f"unknown level (use one of {', '.join(LEVELS)})", start + len(op), name
                )
            rank = LEVEL_RANK[level]
            accepted = {
                ">=": {n for n, r in LEVEL_RANK.items() if r >= rank},
                "<=": {n for n, r in LEVEL_RANK.items() if r <= rank},
                ">": {n for n, r in LEVEL_RANK.items() if r > rank},
                "<": {n for n, r in LEVEL_RANK.items() if r < rank},
                "=": {level},
            }[op]
            break
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
                        f"bad time for {name}: (use 10m, 2h, 1d, an ISO-8601 date, or now)",
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
                predicate = _data_predicate(path, _split_alternatives(value, value_start))
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


def _data_predicate(path: list[str], alternatives: list[tuple[str, int]]) -> Predicate:
    present_only = any(value == "*" for value, _ in alternatives)
    matchers = [_value_matcher(value, ignore_case=False) for value, _ in alternatives]

    def data_has(event: TelemetryEvent) -> bool:
        found, value = _data_lookup(event.data, path)
        if not found:
            return False
        if present_only:
            return True
        if isinstance(value, list | tuple):
            texts = [scalar_text(item) for item in value]
        else:
            texts = [scalar_text(value)]
        return any(matcher(text) for matcher in matchers for text in texts if text is not None)

    return data_has


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
