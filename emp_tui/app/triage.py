"""The Problems view and the comparison with usual, decided without Textual.

:func:`triage` runs the detectors (:func:`emp_tui.problems.find_problems`) and the event
standards (:func:`emp_tui.lint.lint`) over the events at hand; the app calls it from a thread
worker, no more often than :class:`Pacer` allows. :class:`ProblemsState` turns what it found
into the rows of the Problems view (the findings, most severe and newest first, then a
compact section on the event standards), keeps the cursor on the same finding while the
findings are found again, and says what Enter does on a row. :class:`Navigation` decides
what the pane in the timeline's place shows (the Problems view, the open job's timeline or
its comparison with usual) and where Esc goes back to. :func:`comparison_lines` words a
:class:`~emp_tui.analysis.Comparison`.

Text leaves this module inert (:func:`emp_tui.text.inert`) and styled with plain style
strings (:mod:`emp_tui.app.style`): the widgets only wrap it in Rich text.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from emp_tui.analysis import Comparison
from emp_tui.app.style import (
    JOB_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    SEVERITY_COLORS,
    WARN_COLOR,
    severity_mark,
    severity_text_style,
)
from emp_tui.events import TelemetryEvent
from emp_tui.history import TimeRange, event_ms
from emp_tui.lint import LintConfig, LintReport, Offender, TypeChange, UnknownType, lint
from emp_tui.problems import SEVERITIES, SEVERITY_RANK, Finding, StreamState, find_problems
from emp_tui.query import quote_value
from emp_tui.text import clock, data_summary, duration, inert, plural

__all__ = [
    "ApplyFilter",
    "Back",
    "Handoff",
    "Navigation",
    "OpenJob",
    "Pacer",
    "ProblemsState",
    "Row",
    "Triage",
    "TriageRequest",
    "comparison_lines",
    "primary_action",
    "triage",
]

Part = tuple[str, str]
"""Inert text and its style."""
Line = tuple[Part, ...]

SHOWN_OFFENDERS: Final = 5
"""Offenders, unknown types and type changes listed in the view, each (`emp-tui lint` has
them all)."""
TITLE_LIMIT: Final = 600
ONE_JOB_KINDS: Final = frozenset({"stalled", "orphaned", "slow-job"})
"""Findings about one job: Enter opens it (others show their evidence)."""
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_.-]+")


# -- finding problems --------------------------------------------------------------------------


@dataclass(frozen=True)
class TriageRequest:
    """What a search for problems needs beside the events: "now", the gap threshold, what
    the collectors and the stream say of themselves (None: not known) and the lint rules."""

    now_ms: int
    gap_ms: int
    collectors: Sequence[Mapping[str, str]] | None = None
    stream: StreamState | None = None
    lint: LintConfig = field(default_factory=LintConfig)
    within: TimeRange | None = None
    """Only the events in this range are looked at (the range the app shows, when the
    events at hand reach beyond it); None: all of them."""


@dataclass(frozen=True)
class Triage:
    """What one search found over ``events`` events (from ``first_ms`` to ``last_ms``), and
    how long it took."""

    findings: tuple[Finding, ...]
    lint: LintReport | None
    events: int
    first_ms: int | None
    last_ms: int | None
    now_ms: int
    seconds: float = 0.0
    stream_length: int | None = None
    """How many entries the stream holds (XINFO), when known: more than ``events`` means
    the search saw only part of it."""
    within: TimeRange | None = None
    """The range the search was held to (see :attr:`TriageRequest.within`)."""


def triage(
    events: Sequence[TelemetryEvent],
    request: TriageRequest,
    *,
    with_lint: bool = True,
    timer: Callable[[], float] = time.perf_counter,
) -> Triage:
    """The findings and (``with_lint``) the lint report over ``events`` (in stream order).
    The app scores events as they arrive instead (a :class:`~emp_tui.lint.Linter`), and
    adds its report to what the search found."""
    started = timer()
    within = request.within
    if within is not None:
        events = [event for event in events if within.contains(event_ms(event))]
    findings = find_problems(
        events,
        now_ms=request.now_ms,
        gap_ms=request.gap_ms,
        collectors=request.collectors,
        stream=request.stream,
    )
    report = lint(events, request.lint) if events and with_lint else None
    return Triage(
        findings=tuple(findings),
        lint=report,
        events=len(events),
        first_ms=min((e.timestamp for e in events), default=None),
        last_ms=max((e.timestamp for e in events), default=None),
        now_ms=request.now_ms,
        seconds=timer() - started,
        stream_length=request.stream.length if request.stream is not None else None,
        within=within,
    )


class Handoff:
    """The events at hand, handed from the UI thread to the problem finder's thread when
    that thread is ready to look at them (:meth:`give` on the UI thread, :meth:`take` in the
    thread): a copy made earlier would keep alive what the store lets go meanwhile."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._events: list[TelemetryEvent] | None = None
        self._request: TriageRequest | None = None

    def give(self, events: list[TelemetryEvent], request: TriageRequest) -> None:
        self._events, self._request = events, request
        self._ready.set()

    def take(
        self, cancelled: Callable[[], bool], poll: float = 0.25
    ) -> tuple[list[TelemetryEvent], TriageRequest] | None:
        """Wait for :meth:`give`; None when ``cancelled()`` first (the app is stopping)."""
        while not self._ready.wait(poll):
            if cancelled():
                return None
        events, request = self._events, self._request
        self._events = None
        assert events is not None and request is not None
        return events, request


class Pacer:
    """When to look for problems again: never while a search runs; when something changed
    (new events, the collectors' health), or with a live clock (a silence grows by itself);
    at most every ``interval`` seconds, and so far apart that searching takes at most
    ``share`` of the time (a few hundred ms over 100k events: then every few seconds)."""

    def __init__(self, interval: float = 3.0, share: float = 0.1) -> None:
        self.interval = interval
        self.share = share
        self.running = False
        self.stale = True
        self.last_start: float | None = None
        self.last_seconds = 0.0

    def changed(self) -> None:
        self.stale = True

    def due(self, now: float, *, ages: bool = False) -> bool:
        if self.running or not (self.stale or ages):
            return False
        if self.last_start is None:
            return True
        return now - self.last_start >= max(self.interval, self.last_seconds / self.share)

    def start(self, now: float) -> None:
        self.running = True
        self.stale = False
        self.last_start = now

    def done(self, seconds: float) -> None:
        self.running = False
        self.last_seconds = seconds


# -- the rows of the Problems view -------------------------------------------------------------


@dataclass(frozen=True)
class OpenJob:
    job_id: str


@dataclass(frozen=True)
class ApplyFilter:
    """Filter the stream with ``query``, the cursor on the last event at or before ``at_ms``
    (where the problem starts), when given."""

    query: str
    at_ms: int | None = None


Action = OpenJob | ApplyFilter


def primary_action(finding: Finding) -> Action | None:
    """What Enter does on ``finding``: open its job when it is about one job; otherwise show
    its evidence (the filter), or failing that, the job it names."""
    job = finding.job_id
    if job and (finding.kind in ONE_JOB_KINDS or not finding.evidence or len(finding.jobs) <= 1):
        return OpenJob(job)
    if finding.evidence:
        return ApplyFilter(finding.evidence, finding.first_ms)
    return OpenJob(job) if job else None


@dataclass(frozen=True)
class Row:
    """One row of the Problems view: ``line`` is what it shows, ``detail`` what the strip under
    the list says while it is selected. ``action`` is Enter's; ``job`` and ``evidence`` are
    what ``o`` and ``v`` open."""

    key: str
    line: Line
    detail: tuple[Line, ...] = ()
    action: Action | None = None
    job: str | None = None
    evidence: str | None = None
    severity: str | None = None
    selectable: bool = True
    at_ms: int | None = None
    """Where the evidence starts: the stream's cursor goes there."""

    @property
    def evidence_filter(self) -> ApplyFilter | None:
        """What ``v`` does."""
        return ApplyFilter(self.evidence, self.at_ms) if self.evidence else None


def _hint(action: Action | None, job: str | None, evidence: str | None) -> Line:
    """What the keys do on a row."""
    parts: list[Part] = []

    def key(name: str, what: str, value: str, style: str) -> None:
        if parts:
            parts.append(("   ", ""))
        parts.extend([(name, "bold"), (f" {what} ", "dim"), (inert(value, 120), style)])

    if isinstance(action, OpenJob):
        key("Enter", "opens", action.job_id, JOB_COLOR)
    elif isinstance(action, ApplyFilter):
        key("Enter", "filters", action.query, "")
    if job and not isinstance(action, OpenJob):
        key("o", "opens", job, JOB_COLOR)
    if evidence and not isinstance(action, ApplyFilter):
        key("v", "filters", evidence, "")
    if not parts:
        parts.append(("from the collectors' health: nothing to open", "dim"))
    return tuple(parts)


def _finding_row(finding: Finding) -> Row:
    mark, mark_style = severity_mark(finding.severity)
    style = severity_text_style(finding.severity)
    title = inert(finding.title, TITLE_LIMIT)
    line: Line = (
        (mark, mark_style),
        (" ", ""),
        (clock(finding.last_ms)[:8], MUTED_COLOR),
        (" ", ""),
        (title, style),
    )
    span = clock(finding.first_ms)[:8]
    if finding.last_ms != finding.first_ms:
        span += f"-{clock(finding.last_ms)[:8]}"
    subjects = [
        f"{label} {inert(value, 60)}"
        for label, value in (
            ("worker", finding.worker_id),
            ("machine", finding.machine_id),
            ("service", finding.service),
            ("type", finding.connector),
        )
        if value
    ]
    if len(finding.jobs) > 1:
        subjects.insert(0, plural(len(finding.jobs), "job"))
    facts = " · ".join([f"{finding.severity} {finding.kind}", span, *subjects])
    action = primary_action(finding)
    return Row(
        key="finding:" + finding.key,
        line=line,
        detail=(
            ((mark, mark_style), (" ", ""), (title, style)),
            _hint(action, finding.job_id, finding.evidence),
            ((inert(facts, 300), "dim"),),
        ),
        action=action,
        job=finding.job_id,
        evidence=finding.evidence,
        severity=finding.severity,
        at_ms=finding.first_ms,
    )


def _example(event: TelemetryEvent) -> str:
    ids = " ".join(
        f"{label}={inert(value, 40)}"
        for label, value in (("job", event.job_id), ("worker", event.worker_id))
        if value
    )
    return " ".join(part for part in (clock(event.timestamp), ids, data_summary(event.data, 80)))


def _offender_row(offender: Offender) -> Row:
    what = inert(f"{offender.service} {offender.event_type}: {offender.message}", 200)
    evidence = offender.evidence
    at = offender.example.timestamp
    action = ApplyFilter(evidence, at) if evidence else None
    return Row(
        key=f"offender:{offender.service}:{offender.event_type}:{offender.rule}:"
        + offender.message,
        line=(("  ✖ ", SEVERITY_COLORS["error"]), (f"{offender.count:,}x ", "bold"), (what, "")),
        detail=(
            (
                (f"{offender.count:,} events ", "bold"),
                (what, ""),
                (f" ({offender.rule}: {inert(offender.detail, 120)})", "dim"),
            ),
            (("e.g. ", "dim"), (_example(offender.example), "")),
            _hint(action, None, None),
        ),
        action=action,
        evidence=evidence,
        at_ms=at,
    )


def _unknown_row(unknown: UnknownType) -> Row:
    name = inert(unknown.event_type, 80)
    notes = [plural(unknown.count, "event")]
    if unknown.one_off:
        notes[0] += ", one-off"
    if unknown.similar:
        notes.append(f"like {inert(unknown.similar, 60)}")
    notes.append("from " + ", ".join(inert(s, 30) for s in unknown.services[:3]))
    action = ApplyFilter(f"type:{quote_value(unknown.event_type)}", unknown.example.timestamp)
    return Row(
        key="unknown:" + unknown.event_type,
        line=(
            ("  ? ", WARN_COLOR),
            ("unknown type ", "dim"),
            (name, "bold"),
            (" · ", "dim"),
            (" · ".join(notes), ""),
        ),
        detail=(
            (("unknown event type ", "dim"), (name, "bold"), (" · " + " · ".join(notes), "")),
            (("e.g. ", "dim"), (_example(unknown.example), "")),
            _hint(action, None, None),
        ),
        action=action,
        evidence=action.query,
        at_ms=action.at_ms,
    )


def _change_row(change: TypeChange) -> Row:
    kinds = ", ".join(f"{kind} x{count:,}" for kind, count in change.types.items())
    where = inert(f"{change.event_type} data.{change.key}", 120)
    query = f"type:{quote_value(change.event_type)}"
    if _PLAIN_KEY.fullmatch(change.key):
        query += f" data.{change.key}:*"
    action = ApplyFilter(query)
    examples = tuple(
        ((f"{kind}: ", "dim"), (_example(event), "")) for kind, event in change.examples.items()
    )
    return Row(
        key=f"change:{change.event_type}:{change.key}",
        line=(("  ≠ ", WARN_COLOR), (where, "bold"), (f" is {kinds}", "")),
        detail=(
            (("the type of ", "dim"), (where, "bold"), (f" changes: {kinds}", "")),
            *examples[:2],
            _hint(action, None, None),
        ),
        action=action,
        evidence=query,
    )


def _more(count: int, what: str) -> Row:
    return Row(
        key=f"more:{what}",
        line=((f"    … {count:,} more {what}: emp-tui lint lists them all", "dim"),),
        selectable=False,
    )


def lint_rows(report: LintReport) -> list[Row]:
    """The event standards, compactly: the score, each service below the target, one line
    for those that meet it, then the worst offenders, unknown types and type changes."""
    if not report.events:
        return []
    ok = report.meets_target
    rows = [
        Row(
            key="heading:lint",
            line=(
                ("Event standards ", "bold"),
                (
                    f"{report.share:.1%} of {report.events:,} events actionable",
                    f"bold {OK_COLOR}" if ok else f"bold {SEVERITY_COLORS['error']}",
                ),
                (f" · target {report.target:.0%} per service", "dim"),
            ),
            selectable=False,
        )
    ]
    below = [s for s in report.services if not s.meets_target]
    meeting = [s for s in report.services if s.meets_target]
    for score in below:
        rules = ", ".join(f"{rule} {count:,}" for rule, count in list(score.by_rule.items())[:3])
        rows.append(
            Row(
                key="service:" + score.service,
                line=(
                    ("  ✖ ", SEVERITY_COLORS["error"]),
                    (inert(score.service, 40), "bold"),
                    (f" {score.share:.1%}", f"bold {SEVERITY_COLORS['error']}"),
                    (f" ({score.actionable:,} of {score.events:,})", "dim"),
                    (f"  {rules}" if rules else "", ""),
                ),
                selectable=False,
            )
        )
    if meeting:
        names = ", ".join(f"{inert(s.service, 40)} {s.share:.1%}" for s in meeting)
        lead = "every service meets it: " if not below else "meet it: "
        rows.append(
            Row(
                key="services:ok",
                line=(("  ✓ ", OK_COLOR), (lead, "dim"), (names, "")),
                selectable=False,
            )
        )
    rows += [_offender_row(o) for o in report.offenders[:SHOWN_OFFENDERS]]
    if report.offender_groups > min(len(report.offenders), SHOWN_OFFENDERS):
        extra = report.offender_groups - min(len(report.offenders), SHOWN_OFFENDERS)
        rows.append(_more(extra, "ways events break the rules"))
    rows += [_unknown_row(u) for u in report.unknown_types[:SHOWN_OFFENDERS]]
    if len(report.unknown_types) > SHOWN_OFFENDERS:
        rows.append(_more(len(report.unknown_types) - SHOWN_OFFENDERS, "unknown types"))
    rows += [_change_row(c) for c in report.type_changes[:SHOWN_OFFENDERS]]
    if len(report.type_changes) > SHOWN_OFFENDERS:
        rows.append(_more(len(report.type_changes) - SHOWN_OFFENDERS, "type changes"))
    return rows


def _note(key: str, text: str) -> Row:
    return Row(key=key, line=((text, "dim"),), selectable=False)


class ProblemsState:
    """The rows of the Problems view, the cursor, and the counts the tab row and the border
    show. :meth:`update` takes each new :class:`Triage`. Until the user moves the cursor it
    stays on the first row (the worst problem, whichever it is now); once moved, it stays on
    the row with the same key (a finding's :attr:`~emp_tui.problems.Finding.key` is stable
    while events arrive), else near where it was."""

    def __init__(self) -> None:
        self.triage: Triage | None = None
        self.rows: list[Row] = [_note("note:waiting", "No events yet: problems show here.")]
        self.cursor = 0
        self.touched = False
        """The user moved the cursor: it follows its row, not the top."""
        self.generation = 0
        """Bumped on every update (the widget's cache of rendered rows goes with it)."""

    def waiting(self, events: int) -> None:
        """Before the first search: say that it is coming."""
        if self.triage is None and events:
            self.rows = [_note("note:waiting", f"Looking for problems in {events:,} events …")]
            self.generation += 1

    def update(self, found: Triage) -> None:
        selected = self.selected
        self.triage = found
        rows = [_finding_row(finding) for finding in found.findings]
        if not rows:
            span = ""
            if found.first_ms is not None and found.last_ms is not None:
                span = f" ({clock(found.first_ms)[:8]}-{clock(found.last_ms)[:8]})"
            rows.append(
                _note(
                    "note:none",
                    f"No problems found in {plural(found.events, 'event')}{span}.",
                )
            )
        if found.lint is not None:
            rows += lint_rows(found.lint)
        old = self.cursor
        self.rows = rows
        self.generation += 1
        index = None
        if not self.touched:
            self.cursor = self._selectable_from(0, 1)
            return
        if selected is not None:
            index = next((i for i, row in enumerate(rows) if row.key == selected.key), None)
        self.cursor = index if index is not None else self._selectable_from(old, 1)

    # -- the cursor ---------------------------------------------------------------------------

    @property
    def selected(self) -> Row | None:
        if 0 <= self.cursor < len(self.rows) and self.rows[self.cursor].selectable:
            return self.rows[self.cursor]
        return None

    def _selectable_from(self, index: int, step: int) -> int:
        """The first selectable row from ``index`` on in direction ``step`` (else the other
        way; else ``index`` clamped)."""
        rows = self.rows
        index = max(0, min(index, len(rows) - 1))
        for direction in (step, -step):
            i = index
            while 0 <= i < len(rows):
                if rows[i].selectable:
                    return i
                i += direction
        return index

    def select(self, index: int) -> None:
        """The cursor on row ``index`` (a click), when it is selectable."""
        if 0 <= index < len(self.rows) and self.rows[index].selectable:
            self.cursor = index
            self.touched = True

    def move(self, delta: int) -> None:
        """The cursor ``delta`` selectable rows on (clamped at the ends)."""
        self.touched = True
        step = 1 if delta > 0 else -1
        index = self.cursor
        for _ in range(abs(delta)):
            i = index + step
            while 0 <= i < len(self.rows) and not self.rows[i].selectable:
                i += step
            if not 0 <= i < len(self.rows):
                break
            index = i
        self.cursor = index

    def move_to(self, index: int) -> None:
        """The cursor on row ``index`` (negative: from the end), or the nearest selectable."""
        self.touched = True
        if index < 0:
            index = len(self.rows) + index
            self.cursor = self._selectable_from(index, -1)
        else:
            self.cursor = self._selectable_from(index, 1)

    # -- what the tab row and the border say --------------------------------------------------

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.triage.findings if self.triage is not None else ()

    def counts(self) -> dict[str, int]:
        """Findings by severity, most severe first (only those with any)."""
        seen = Counter(f.severity for f in self.findings)
        return {severity: seen[severity] for severity in SEVERITIES if seen[severity]}

    def top(self, at_least: str = "warn") -> Finding | None:
        """The first finding of severity ``at_least`` or more (they are sorted)."""
        floor = SEVERITY_RANK[at_least]
        return next((f for f in self.findings if SEVERITY_RANK[f.severity] >= floor), None)

    def badge(self) -> Line:
        """The counts as marks: ``‼1 ✖3 ▲2 ●1``."""
        parts: list[Part] = []
        for severity, count in self.counts().items():
            mark, style = severity_mark(severity)
            parts.append((f"{mark}{count} ", style))
        return tuple(parts)

    def title(self) -> str:
        """The border title's figures: ``11 found: 2 critical, 3 errors, 5 warnings, 1 info``
        (after the pane's "3 problems", so the count says "found")."""
        if self.triage is None:
            return ""
        counts = self.counts()
        if not counts:
            return "none found"
        words = {"critical": "critical", "error": "error", "warn": "warning", "info": "info"}
        out = []
        for severity, count in counts.items():
            word = words[severity]
            plural = word in ("error", "warning") and count != 1
            out.append(f"{count:,} {word}{'s' if plural else ''}")
        return f"{len(self.findings):,} found: " + ", ".join(out)

    def subtitle(self) -> str:
        """The border subtitle: what was looked at, and the standards' score."""
        found = self.triage
        if found is None:
            return ""
        text = f"over {found.events:,} events"
        within = found.within
        if within is not None and (within.since_ms is not None or within.until_ms is not None):
            # Held to the range the app shows, and judged at its end when that is past.
            since = "…" if within.since_ms is None else clock(within.since_ms)[:8]
            until = "now" if within.until_ms is None else clock(within.until_ms)[:8]
            text += f" {since}-{until}"
        elif found.stream_length is not None and found.stream_length > found.events:
            # A view built from part of the data says so.
            text = f"over the newest {found.events:,} of {found.stream_length:,} in the stream"
        if found.lint is not None and found.lint.events:
            report = found.lint
            below = sum(1 for s in report.services if not s.meets_target)
            text += f" · standards {report.share:.1%}"
            text += f", {below} below {report.target:.0%}" if below else " ✓"
        return text


# -- what the pane in the timeline's place shows, and Esc ------------------------------------

Slot = Literal["problems", "timeline", "compare"]
EntryKind = Literal["pin", "compare", "filter", "problems"]


@dataclass(frozen=True)
class _Entry:
    """Something done that Esc undoes. ``depth``: how many jobs were open when it was done
    (for ``problems``, before the job chosen in the Problems view opened)."""

    kind: EntryKind
    depth: int
    text: str = ""


@dataclass(frozen=True)
class Back:
    """What Esc does: undo ``pin`` (the Problems view over a job: back to the job), undo
    ``compare`` (back to the timeline), restore the filter ``text`` (undo ``filter``), close
    the job and go back to the Problems view (``problems``) or as before (``job``), or
    nothing to undo (``none``)."""

    kind: Literal["pin", "compare", "filter", "problems", "job", "none"]
    text: str = ""


class Navigation:
    """The pane in the timeline's place shows the Problems view while no job is open, or when
    asked (``!``: :meth:`pin`); else the open job's timeline, or its comparison with usual
    (``u``: :meth:`compare`). Esc goes back through what was done (:meth:`back`), together
    with the app's job history: the jobs open are its ``depth``."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def slot(self, job: str | None, depth: int) -> Slot:
        if job is None:
            return "problems"
        for entry in reversed(self._entries):
            if entry.depth != depth:
                break
            if entry.kind == "pin":
                return "problems"
            if entry.kind == "compare":
                return "compare"
        return "timeline"

    def _push(self, kind: EntryKind, depth: int, text: str = "") -> None:
        self._entries.append(_Entry(kind, depth, text))

    def pin(self, job: str | None, depth: int) -> None:
        """Show the Problems view (over the open job, until Esc)."""
        if job is not None and self.slot(job, depth) != "problems":
            self._push("pin", depth)

    def compare(self, depth: int) -> None:
        """Show the open job beside usual ones (until Esc, or :meth:`uncompare`)."""
        self._push("compare", depth)

    def uncompare(self, depth: int) -> None:
        """Back from the comparison to the timeline (``u`` again)."""
        while self._entries and self._entries[-1].depth == depth:
            if self._entries.pop().kind == "compare":
                return

    def chose_job(self, depth: int) -> None:
        """A job opens from the Problems view (``depth`` jobs open before it): Esc on its
        timeline comes back here."""
        self._push("problems", depth)

    def chose_filter(self, depth: int, previous: str) -> None:
        """The Problems view applied a filter over ``previous``: Esc restores it."""
        self._push("filter", depth, previous)

    def reopened(self, depth: int) -> None:
        """The open job was asked for again: its timeline shows, over whatever was on top."""
        while self._entries and self._entries[-1].depth == depth:
            if self._entries[-1].kind == "filter":
                break
            self._entries.pop()

    def back(self, depth: int) -> Back:
        """Undo the last thing done (the caller then closes the job for ``problems`` and
        ``job``)."""
        top = self._entries[-1] if self._entries else None
        if top is not None and top.depth == depth:
            self._entries.pop()
            return Back(top.kind, top.text)
        if depth == 0:
            return Back("none")
        if top is not None and top.kind == "problems" and top.depth == depth - 1:
            self._entries.pop()
            return Back("problems")
        return Back("job")


# -- the comparison with usual -----------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{share:.0%}"


def comparison_lines(comparison: Comparison) -> list[Line]:
    """``comparison`` as lines: the job against the usual duration, each step against the
    usual p50/p95 (slower ones marked), what it lacks or has in excess against the usual
    sequence, and its fields against the typical jobs'."""
    c = comparison
    warn = f"bold {WARN_COLOR}"
    kind = inert(c.job_type, 40) if c.job_type else "jobs of any type"
    lines: list[Line] = []
    head: list[Part] = [
        ("job ", "dim"),
        (inert(c.job_id, 80), "bold"),
        (f" ({inert(c.job_type, 40)})" if c.job_type else "", ""),
        (f" took {duration(c.duration_ms)}", "bold"),
    ]
    usual = c.usual_duration
    if usual is not None:
        slow = c.duration_ms > usual.p95_ms
        head.append(
            (
                f" · usually {duration(usual.p50_ms)} (p95 {duration(usual.p95_ms)})",
                warn if slow else "",
            )
        )
    head.append((f" · beside {plural(c.typical, 'typical job')} of {kind}", "dim"))
    lines.append(tuple(head))
    if not c.typical:
        lines.append((("No other job of its type is at hand to compare with.", "dim"),))
        return lines

    lines.append(())
    lines.append(
        (
            ("Steps", "bold underline"),
            (" took  usual p50     p95", "dim"),
        )
    )
    for step in c.steps:
        style = warn if step.slower else ""
        if step.usual is None:
            usual_text = "   (too few to say)"
        else:
            usual_text = f"{duration(step.usual.p50_ms):>11}{duration(step.usual.p95_ms):>8}"
        lines.append(
            (
                ("▲ " if step.slower else "  ", warn),
                (f"{duration(step.duration_ms):>8}", style or "bold"),
                (usual_text, "dim"),
                ("   ", ""),
                (inert(f"{step.from_type} → {step.to_type}", 120), style),
                ("  slower than usual" if step.slower else "", warn),
            )
        )
    if not c.steps:
        lines.append((("  (one event: no steps)", "dim"),))

    lines.append(())
    lines.append((("Sequence", "bold underline"), ("  against the usual one", "dim")))
    if c.usual_sequence:
        shown = " ".join(inert(t, 40) for t in c.usual_sequence[:16])
        more = f" … (+{len(c.usual_sequence) - 16})" if len(c.usual_sequence) > 16 else ""
        lines.append((("  usual: ", "dim"), (shown + more, "")))
    for diff in c.sequence:
        share = f"in {_pct(diff.share)} of them"
        if diff.change == "missing":
            what = f"missing {inert(diff.event_type, 60)} ({share})"
        elif diff.change == "extra":
            what = f"extra {inert(diff.event_type, 60)} x{diff.count} ({share})"
        else:
            what = (
                f"{diff.change} {inert(diff.event_type, 60)}: {diff.count} "
                f"(usually {diff.usual_count})"
            )
        lines.append((("  ▲ ", warn), (what, "")))
    if not c.sequence:
        lines.append((("  ✓ the usual events, as many as usual", OK_COLOR),))

    lines.append(())
    lines.append((("Fields", "bold underline"), ("  against the typical jobs'", "dim")))
    for f in c.fields:
        value = inert(f.value, 40) if f.value is not None else "-"
        if f.usual is None:
            against = "not known for them"
        elif f.distinct > 1 and f.value is not None and not f.differs:
            against = f"{f.distinct} values among them; this one in {_pct(f.value_share)}"
        else:
            against = f"usually {inert(f.usual, 40)} ({_pct(f.usual_share)})"
        style = warn if f.differs else ""
        lines.append(
            (
                ("  ▲ " if f.differs else "    ", warn),
                (f.name.ljust(10), "bold"),
                (value.ljust(20), style),
                (" " + against, "dim"),
            )
        )
    return lines
