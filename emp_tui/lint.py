"""Event standards and quality: the rules an event should follow, and how well a stream
follows them. Pure: no I/O, no Textual.

The rules live in one table, :data:`RULES` (documented in the README). Two kinds:

* naming: an event type is ``{entity}.{action}`` in lower snake_case with exactly one dot;
  progress is ``{entity}.{status}_updated``; a failure is ``{entity}.{action}_failed`` (or
  ``{entity}.failed``, ``{entity}.error``), and an error-level event is named as one.
* required fields: every event carries timestamp, service, eventType and traceId; an event
  is a job, worker or machine event by its type's entity (``job.*``, ``worker.*``,
  ``machine.*``) and carries jobId, workerId or machineId; a ``job.claimed`` names its worker.

An event is *actionable* when it breaks none of the rules that apply to it; the plan asks
that 95% are (``LintConfig.target``). A team extends the rules in config.toml (:class:`LintConfig`):
more required fields per type glob, type globs exempt from a rule, more known types.

Use::

    report = lint(events, config)                 # or: linter = Linter(config); linter.add(...)
    report.share, report.services, report.offenders, report.to_dict()
    Checker(config).check(event)                  # one event's violations, () when none

Presence of a field is read through :func:`field_problem`, which asks what the decoder
recorded in ``event.malformed`` (the decoder fills in a missing traceId and lifts IDs found
only inside ``data`` to the top: a lifted ID counts as carried).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from emp_tui.events import ID_FIELDS, TelemetryEvent
from emp_tui.query import data_lookup

__all__ = [
    "DEFAULT_TARGET",
    "KNOWN_TYPES",
    "RULES",
    "WIRE_FIELDS",
    "Checker",
    "LintConfig",
    "LintConfigError",
    "LintReport",
    "Linter",
    "Offender",
    "Rule",
    "RuleScore",
    "ServiceScore",
    "TypeChange",
    "TypeScore",
    "UnknownType",
    "Violation",
    "field_problem",
    "lint",
    "suggest_type",
]

DEFAULT_TARGET: Final = 0.95
"""The plan's success metric: more than 95% of events provide actionable information."""

RuleKind = Literal["naming", "required"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One standard. ``types`` is the glob (``*`` and ``?``, case-sensitive) of the event
    types it applies to; a required-field rule names its ``fields``: wire names
    (:data:`WIRE_FIELDS`) or ``data.<key>``."""

    id: str
    kind: RuleKind
    types: str
    says: str
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "types": self.types}
        if self.fields:
            out["fields"] = list(self.fields)
        out["says"] = self.says
        return out


RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "naming.shape",
        "naming",
        "*",
        "an event type is {entity}.{action}: exactly one dot, both parts lower snake_case "
        "(a-z, 0-9 and _, starting with a letter): job.created, health_check.performed",
    ),
    Rule(
        "naming.progress",
        "naming",
        "*",
        "progress is {entity}.{status}_updated: job.progress_updated, not job.progress or "
        "job.update_progress",
    ),
    Rule(
        "naming.failure",
        "naming",
        "*",
        "a failure is {entity}.{action}_failed, {entity}.failed or {entity}.error: "
        "connector.processing_failed, not connector.processing_error or job.failure",
    ),
    Rule(
        "naming.error_level",
        "naming",
        "*",
        "an error-level event is named as a failure (*_failed, *.failed, *.error)",
    ),
    Rule(
        "required.all",
        "required",
        "*",
        "every event carries timestamp, service, eventType and traceId",
        ("timestamp", "service", "eventType", "traceId"),
    ),
    Rule("required.job", "required", "job.*", "job events carry jobId", ("jobId",)),
    Rule("required.worker", "required", "worker.*", "worker events carry workerId", ("workerId",)),
    Rule(
        "required.machine",
        "required",
        "machine.*",
        "machine events carry machineId",
        ("machineId",),
    ),
    Rule(
        "required.claim",
        "required",
        "job.claimed",
        "a claim names the worker that took the job",
        ("workerId",),
    ),
)

KNOWN_TYPES: Final = frozenset(
    {
        # the execution plan's emission points
        "server.starting",
        "server.ready",
        "server.shutting_down",
        "job.created",
        "job.queued",
        "job.creation_failed",
        "job.claimed",
        "job.progress_updated",
        "job.completed",
        "job.failed",
        "redis_function.executing",
        "redis_function.completed",
        "redis_function.failed",
        "websocket.connected",
        "websocket.subscribed",
        "websocket.disconnected",
        "api.error",
        "health_check.performed",
        "user.login",
        "worker.starting",
        "worker.ready",
        "connector.processing_started",
        "connector.processing_completed",
        "connector.processing_failed",
        "machine.starting",
        "machine.hardware_detected",
        "machine.services_ready",
        "machine.ready",
        # the machines' PM2 services, webhook delivery, and the emitter itself
        "pm2.service_starting",
        "pm2.service_started",
        "pm2.service_failed",
        "webhook.sent",
        "webhook.failed",
        "telemetry.events_dropped",
        "telemetry.circuit_changed",
    }
)
"""Event types the platform is known to emit. A type outside it (and outside the config's
``known_types``) is reported as unknown: a new event, or a typo of a known one."""

WIRE_FIELDS: Final = (
    "timestamp",
    "service",
    "eventType",
    "traceId",
    "spanId",
    *(wire for wire, _ in ID_FIELDS),
)
"""The fields a required-field rule may name, besides ``data.<key>``."""

_ATTRIBUTES: Final[dict[str, str]] = {**dict(ID_FIELDS), "spanId": "span_id"}
_KINDS: Final = ("naming", "required")


def field_problem(event: TelemetryEvent, name: str) -> str | None:
    """Why ``event`` does not carry the field ``name`` usably (``"traceId missing"``,
    ``"timestamp 'x' is not epoch milliseconds"``, ``"jobId missing"``,
    ``"data.progress missing"``), or None when it does.

    The decoder fills in what an entry lacked (a traceId derived from the jobId, the stream's
    time for a timestamp) and says so in ``event.malformed``; that record is what is read
    here, so this is the one place to change if the decoder records it another way. An ID
    the decoder lifted out of ``data`` counts as carried."""
    if name.startswith("data."):
        found, _ = data_lookup(event.data, name[5:].split("."))
        return None if found else f"{name} missing"
    attribute = _ATTRIBUTES.get(name)
    if attribute is not None and getattr(event, attribute) is None:
        return f"{name} missing"
    if event.malformed:
        prefix = name + " "
        for reason in event.malformed.split("; "):
            if reason.startswith(prefix):
                return reason
    if name == "traceId" and not event.trace_id:
        return "traceId missing"
    return None


# -- naming ------------------------------------------------------------------------------------

_SEGMENT: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_FAILURE_WORDS: Final = frozenset(
    {"error", "errors", "errored", "failure", "failures", "fail", "fails", "exception"}
)
_UPDATE_WORDS: Final = frozenset({"update", "updates", "updating"})


def _is_failure_action(action: str) -> bool:
    return action in ("failed", "error") or action.endswith("_failed")


def suggest_type(event_type: str) -> str | None:
    """A name of the standard shape close to ``event_type``: ``JobDone`` -> ``job.done``,
    ``job.progressUpdated`` -> ``job.progress_updated``, ``job.step.done`` ->
    ``job.step_done``. None when there is no obvious one."""
    words = _CAMEL_BOUNDARY.sub("_", event_type.strip()).lower()
    words = re.sub(r"[^a-z0-9.]+", "_", words)
    parts = [part.strip("_") for part in words.split(".")]
    parts = [part for part in parts if part]
    if not parts:
        return None
    if len(parts) == 1:
        entity, _, action = parts[0].partition("_")
    else:
        entity, action = parts[0], "_".join(parts[1:])
    candidate = f"{entity}.{action}"
    if candidate == event_type or not _SEGMENT.fullmatch(entity) or not _SEGMENT.fullmatch(action):
        return None
    return candidate


def _shape_problem(event_type: str) -> str | None:
    entity, _, action = event_type.partition(".")
    dots = event_type.count(".")
    if dots == 1 and _SEGMENT.fullmatch(entity) and _SEGMENT.fullmatch(action):
        return None
    if dots == 0:
        problem = "no dot: name it {entity}.{action}"
    elif dots > 1:
        problem = f"{dots} dots: name it {{entity}}.{{action}} with one dot"
    elif not entity or not action:
        problem = "an empty entity or action"
    else:
        problem = "not lower snake_case"
    suggestion = suggest_type(event_type)
    return f"{problem} ({suggestion}?)" if suggestion else problem


def _naming_violations(event_type: str, error_level: bool) -> list[Violation]:
    """The naming rules broken by a type (at error level or not), in the table's order. A
    type not of the shape breaks only naming.shape: the others read its parts."""
    shape = _shape_problem(event_type)
    if shape is not None:
        return [Violation("naming.shape", shape)]
    entity, _, action = event_type.partition(".")
    words = action.split("_")
    out: list[Violation] = []
    is_progress = "progress" in words or words[-1] in _UPDATE_WORDS
    if is_progress and (len(words) < 2 or words[-1] != "updated"):
        stem = ["progress"] if "progress" in words else words[:-1]
        fixed = "_".join([*stem, "updated"])
        out.append(
            Violation(
                "naming.progress", f"progress is {{entity}}.{{status}}_updated ({entity}.{fixed}?)"
            )
        )
    failure_named = _is_failure_action(action)
    if words[-1] in _FAILURE_WORDS and not failure_named:
        fixed = "_".join([*words[:-1], "failed"])
        out.append(
            Violation(
                "naming.failure",
                f"a failure is {{entity}}.{{action}}_failed ({entity}.{fixed}?)",
            )
        )
    elif error_level and not failure_named:
        out.append(
            Violation(
                "naming.error_level",
                "level error, but not named as a failure (*_failed, *.failed, *.error)",
            )
        )
    return out


# -- configuration -----------------------------------------------------------------------------


class LintConfigError(ValueError):
    """A ``[lint]`` table that cannot be used; the message is one line."""


@dataclass(frozen=True)
class LintConfig:
    """What a team adds to the rules, from the ``[lint]`` table of config.toml::

        [lint]
        target = 0.95                        # the share of actionable events to reach
        known_types = ["billing.*"]          # more known types (globs)
        [lint.required]                      # type glob = fields such events must carry
        "connector.*" = ["jobId"]
        "job.progress_updated" = ["data.progress"]
        [lint.exempt]                        # rule id, or naming / required = type globs
        "naming.shape" = ["LegacyEvent"]
        required = ["debug.*"]

    Every setting is optional; :meth:`from_toml` reads the table and says what is wrong.
    """

    target: float = DEFAULT_TARGET
    required: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Type glob -> fields (wire names or ``data.<key>``) every such event must carry."""
    exempt: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Rule id (or a kind: ``naming``, ``required``) -> type globs the rule does not judge."""
    known_types: tuple[str, ...] = ()
    """Type globs known besides :data:`KNOWN_TYPES`."""

    def rules(self) -> tuple[Rule, ...]:
        """The rules in force: :data:`RULES`, then one ``required[<glob>]`` per configured
        type glob."""
        extra = tuple(
            Rule(
                f"required[{types}]",
                "required",
                types,
                f"{types} events carry {', '.join(names)} (config.toml)",
                names,
            )
            for types, names in self.required.items()
        )
        return RULES + extra

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> LintConfig:
        """Read the ``[lint]`` table of config.toml. Raises :class:`LintConfigError`."""
        target = DEFAULT_TARGET
        required: dict[str, tuple[str, ...]] = {}
        exempt: dict[str, tuple[str, ...]] = {}
        known: tuple[str, ...] = ()
        for key, value in table.items():
            if key == "target":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise LintConfigError("[lint] target must be a number, e.g. 0.95")
                if not 0 < value <= 1:
                    raise LintConfigError("[lint] target is a share between 0 and 1, e.g. 0.95")
                target = float(value)
            elif key == "known_types":
                known = _strings(value, "[lint] known_types must be a list of type globs")
            elif key == "required":
                required = _read_required(value)
            elif key == "exempt":
                exempt = _read_exempt(value)
            else:
                raise LintConfigError(
                    f"[lint] unknown setting {key!r} (known: target, known_types, required, exempt)"
                )
        config = cls(target=target, required=required, exempt=exempt, known_types=known)
        ids = {rule.id for rule in config.rules()}
        for rule in exempt:
            if rule not in ids and rule not in _KINDS:
                raise LintConfigError(
                    f"[lint.exempt] unknown rule {rule!r} (rules: {', '.join(sorted(ids))}; "
                    "or naming, required)"
                )
        return config


def _read_required(table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, Mapping):
        raise LintConfigError('[lint.required] maps type globs to fields: "x.*" = [...]')
    required: dict[str, tuple[str, ...]] = {}
    for types, value in table.items():
        names = _strings(value, f"[lint.required] {types!r} must be a list of field names")
        if not names:
            raise LintConfigError(f"[lint.required] {types!r} names no field")
        for name in names:
            if not _is_field_name(name):
                raise LintConfigError(
                    f"[lint.required] {types!r}: unknown field {name!r} (use "
                    f"{', '.join(WIRE_FIELDS)} or data.<key>)"
                )
        required[types] = names
    return required


def _read_exempt(table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, Mapping):
        raise LintConfigError("[lint.exempt] maps rule ids to type globs: id = [...]")
    return {
        rule: _strings(globs, f"[lint.exempt] {rule!r} must be a list of type globs")
        for rule, globs in table.items()
    }


def _strings(value: Any, complaint: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise LintConfigError(complaint)
    return tuple(v.strip() for v in value)


def _is_field_name(name: str) -> bool:
    if name.startswith("data."):
        return all(name[5:].split("."))
    return name in WIRE_FIELDS


# -- checking one event ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule an event breaks, and how (``"jobId missing"``, ``"no dot: ..."``);
    ``field`` is the field a required-field rule found wanting."""

    rule: str
    message: str
    field: str | None = None

    @property
    def problem(self) -> str:
        """The message without what is particular to one event, which reports group by:
        ``"timestamp unreadable"`` for ``"timestamp 'soon' is not epoch milliseconds"``."""
        if self.field is None or self.message == f"{self.field} missing":
            return self.message
        return f"{self.field} unreadable"

    def to_dict(self) -> dict[str, str | None]:
        return {"rule": self.rule, "message": self.message, "field": self.field}


_Fields = tuple[tuple[str, str], ...]  # (rule id, field name)
_CACHED_TYPES: Final = 10_000


class Checker:
    """The rules in force for one configuration, compiled: :meth:`check` judges an event.
    What a type breaks by its name is worked out once per type and level."""

    def __init__(self, config: LintConfig | None = None) -> None:
        self.config = LintConfig() if config is None else config
        self.rules = self.config.rules()
        self._exempt = self.config.exempt
        self._known = self.config.known_types
        self._naming: dict[tuple[str, bool], tuple[Violation, ...]] = {}
        self._required: dict[str, tuple[_Fields, _Fields]] = {}

    def check(self, event: TelemetryEvent) -> tuple[Violation, ...]:
        """Every rule ``event`` breaks; () when it is actionable."""
        key = (event.event_type, event.level == "error")
        naming = self._naming.get(key)
        if naming is None:
            if len(self._naming) >= _CACHED_TYPES:  # a stream of made-up types
                self._naming.clear()
                self._required.clear()
            naming = self._naming[key] = tuple(
                v
                for v in _naming_violations(event.event_type, key[1])
                if not self._is_exempt(v.rule, "naming", event.event_type)
            )
        required = self._required.get(event.event_type)
        if required is None:
            required = self._required[event.event_type] = self._required_for(event.event_type)
        # timestamp, service, eventType and traceId can only be wanting when the decoder said
        # so (or left the traceId empty): most events need only their IDs and data looked at.
        pairs = required[0] if event.malformed or not event.trace_id else required[1]
        if not pairs:
            return naming
        missing = [
            Violation(rule, problem, name)
            for rule, name in pairs
            if (problem := field_problem(event, name)) is not None
        ]
        return (*naming, *missing) if missing else naming

    def is_known(self, event_type: str) -> bool:
        return event_type in KNOWN_TYPES or any(fnmatchcase(event_type, g) for g in self._known)

    def _required_for(self, event_type: str) -> tuple[_Fields, _Fields]:
        """The (rule id, field) pairs a type must carry: all of them, and those that may be
        wanting in an event the decoder found nothing wrong with."""
        pairs = tuple(
            (rule.id, name)
            for rule in self.rules
            if rule.kind == "required"
            and fnmatchcase(event_type, rule.types)
            and not self._is_exempt(rule.id, "required", event_type)
            for name in rule.fields
        )
        return pairs, tuple(p for p in pairs if p[1] in _ATTRIBUTES or p[1].startswith("data."))

    def _is_exempt(self, rule: str, kind: str, event_type: str) -> bool:
        return any(
            fnmatchcase(event_type, glob)
            for key in (rule, kind)
            for glob in self._exempt.get(key, ())
        )


# -- the report --------------------------------------------------------------------------------


class _Scored:
    """What every score has: of its ``events``, how many are ``actionable``."""

    events: int
    actionable: int

    @property
    def share(self) -> float:
        """The share of actionable events (1.0 when there are none)."""
        return self.actionable / self.events if self.events else 1.0


class _Targeted(_Scored):
    """A score held against the target share."""

    target: float

    @property
    def meets_target(self) -> bool:
        return self.share >= self.target


@dataclass(frozen=True)
class ServiceScore(_Targeted):
    """How one service does: of its ``events``, how many are ``actionable``, and how many
    broke each rule (``by_rule``: rule id -> events)."""

    service: str
    events: int
    actionable: int
    target: float
    by_rule: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "events": self.events,
            "actionable": self.actionable,
            "share": self.share,
            "meetsTarget": self.meets_target,
            "byRule": dict(self.by_rule),
        }


@dataclass(frozen=True)
class TypeScore(_Scored):
    """How one event type does, which services emit it, and its problems (message ->
    events)."""

    event_type: str
    events: int
    actionable: int
    services: tuple[str, ...]
    known: bool
    problems: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "events": self.events,
            "actionable": self.actionable,
            "share": self.share,
            "services": list(self.services),
            "known": self.known,
            "problems": dict(self.problems),
        }


@dataclass(frozen=True)
class RuleScore:
    """A rule in force, and how many events broke it."""

    rule: Rule
    broken: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.rule.to_dict(), "broken": self.broken}


@dataclass(frozen=True)
class Offender:
    """One way events go wrong: a service's events of one type breaking one rule the same way
    (``message``: :attr:`Violation.problem`), how many, the first such event (``example``,
    and ``detail``, what exactly was wrong with it), and ``evidence``, a query that shows
    them (None when the type cannot be written as a plain term)."""

    service: str
    event_type: str
    rule: str
    message: str
    count: int
    example: TelemetryEvent
    detail: str
    evidence: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "eventType": self.event_type,
            "rule": self.rule,
            "message": self.message,
            "count": self.count,
            "detail": self.detail,
            "evidence": self.evidence,
            "example": self.example.to_dict(),
        }


@dataclass(frozen=True)
class UnknownType:
    """An event type outside the known ones: new, or a typo. ``one_off`` when it was seen
    once; ``similar`` is a known (or often seen) type it looks like."""

    event_type: str
    count: int
    services: tuple[str, ...]
    example: TelemetryEvent
    similar: str | None = None

    @property
    def one_off(self) -> bool:
        return self.count == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "count": self.count,
            "oneOff": self.one_off,
            "services": list(self.services),
            "similar": self.similar,
            "example": self.example.to_dict(),
        }


@dataclass(frozen=True)
class TypeChange:
    """A data key (``gpu.model`` for nested keys) whose JSON type differs between events of
    one type: ``types`` counts each JSON type (null, boolean, number, string, array, object)
    and ``examples`` holds the first event of each."""

    event_type: str
    key: str
    types: Mapping[str, int]
    examples: Mapping[str, TelemetryEvent]

    def to_dict(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "key": self.key,
            "types": dict(self.types),
            "examples": {kind: event.to_dict() for kind, event in self.examples.items()},
        }


@dataclass(frozen=True)
class LintReport(_Targeted):
    """How well ``events`` events follow the standards. Services and types are listed worst
    first; ``offenders`` holds the worst of the ``offender_groups`` ways of going wrong, at
    most the limit asked for. ``capped_types`` are types with more than
    :data:`MAX_KEYS_PER_TYPE` distinct data keys: the keys past that are not followed for
    ``type_changes``."""

    events: int
    actionable: int
    target: float
    services: tuple[ServiceScore, ...]
    types: tuple[TypeScore, ...]
    rules: tuple[RuleScore, ...]
    offenders: tuple[Offender, ...]
    offender_groups: int
    unknown_types: tuple[UnknownType, ...]
    type_changes: tuple[TypeChange, ...]
    capped_types: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "actionable": self.actionable,
            "share": self.share,
            "target": self.target,
            "meetsTarget": self.meets_target,
            "servicesBelowTarget": [s.service for s in self.services if not s.meets_target],
            "offenderGroups": self.offender_groups,
            "cappedTypes": list(self.capped_types),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report as one JSON object."""
        return {
            **self.summary(),
            "services": [s.to_dict() for s in self.services],
            "types": [t.to_dict() for t in self.types],
            "rules": [r.to_dict() for r in self.rules],
            "offenders": [o.to_dict() for o in self.offenders],
            "unknownTypes": [u.to_dict() for u in self.unknown_types],
            "typeChanges": [c.to_dict() for c in self.type_changes],
        }

    def records(self) -> Iterator[dict[str, Any]]:
        """The report as JSON lines: a ``summary``, then one object per ``service``,
        ``type``, ``rule``, ``offender``, ``unknownType`` and ``typeChange``, each with its
        ``kind``."""
        yield {"kind": "summary", **self.summary()}
        sections: tuple[tuple[str, Iterable[Any]], ...] = (
            ("service", self.services),
            ("type", self.types),
            ("rule", self.rules),
            ("offender", self.offenders),
            ("unknownType", self.unknown_types),
            ("typeChange", self.type_changes),
        )
        for kind, items in sections:
            for item in items:
                yield {"kind": kind, **item.to_dict()}


# -- scoring -----------------------------------------------------------------------------------

MAX_KEYS_PER_TYPE: Final = 256
"""Distinct data keys followed per event type for type changes (data keyed by IDs would
otherwise grow without bound)."""
_MAX_DEPTH: Final = 4  # nested objects followed this deep for type changes


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


_PLAIN_TERM: Final = re.compile(r"[^\s\",*?]+")
# wire field -> the query's term for it
_ID_TERMS: Final = {
    "jobId": "job",
    "workerId": "worker",
    "machineId": "machine",
    "userId": "user",
    "spanId": "span",
}


def _evidence(service: str, event_type: str, violation: Violation) -> str | None:
    """A query showing the events of an offender, when its values can be written plainly."""
    if not (_PLAIN_TERM.fullmatch(service) and _PLAIN_TERM.fullmatch(event_type)):
        return None
    terms = [f"service:{service}", f"type:{event_type}"]
    if violation.rule == "naming.error_level":
        terms.append("level:error")
    name = violation.field
    if name is not None and violation.problem == f"{name} missing":
        if name.startswith("data."):
            terms.append(f"-{name}:*")
        elif name in _ID_TERMS:
            terms.append(f"-{_ID_TERMS[name]}:*")
    return " ".join(terms)


class _TypeStats:
    __slots__ = ("actionable", "events", "example", "keys", "problems", "services")

    def __init__(self, example: TelemetryEvent) -> None:
        self.events = 0
        self.actionable = 0
        self.example = example
        self.services: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        # data key -> JSON type -> [count, first event]
        self.keys: dict[str, dict[str, list[Any]]] = {}


class Linter:
    """Scores events as they come (:meth:`add`); :meth:`report` says how they did so far."""

    def __init__(self, config: LintConfig | None = None) -> None:
        self.checker = Checker(config)
        self.target = self.checker.config.target
        self._events = 0
        self._actionable = 0
        self._services: dict[str, list[Any]] = {}  # service -> [events, actionable, Counter]
        self._types: dict[str, _TypeStats] = {}
        self._rules: Counter[str] = Counter()
        # (service, type, rule, problem) -> [count, first event, its violation]
        self._offenders: dict[tuple[str, str, str, str], list[Any]] = {}
        self._capped: set[str] = set()

    def add(self, events: Iterable[TelemetryEvent]) -> None:
        for event in events:
            self.add_one(event)

    def add_one(self, event: TelemetryEvent) -> None:
        violations = self.checker.check(event)
        self._events += 1
        service = self._services.get(event.service)
        if service is None:
            service = self._services[event.service] = [0, 0, Counter()]
        service[0] += 1
        stats = self._types.get(event.event_type)
        if stats is None:
            stats = self._types[event.event_type] = _TypeStats(event)
        stats.events += 1
        stats.services[event.service] += 1
        if not violations:
            self._actionable += 1
            service[1] += 1
            stats.actionable += 1
        else:
            rules = {violation.rule for violation in violations}
            service[2].update(rules)
            self._rules.update(rules)
            for violation in violations:
                problem = violation.problem
                stats.problems[problem] += 1
                key = (event.service, event.event_type, violation.rule, problem)
                group = self._offenders.get(key)
                if group is None:
                    self._offenders[key] = [1, event, violation]
                else:
                    group[0] += 1
        if event.data:
            self._follow_keys(stats, event, event.data, "", 0)

    def _follow_keys(
        self,
        stats: _TypeStats,
        event: TelemetryEvent,
        data: Mapping[Any, Any],
        prefix: str,
        depth: int,
    ) -> None:
        keys = stats.keys
        for name, value in data.items():
            key = f"{prefix}{name}"
            kind = _json_type(value)
            kinds = keys.get(key)
            if kinds is None:
                if len(keys) >= MAX_KEYS_PER_TYPE:
                    self._capped.add(event.event_type)
                    continue
                kinds = keys[key] = {}
            seen = kinds.get(kind)
            if seen is None:
                kinds[kind] = [1, event]
            else:
                seen[0] += 1
            if kind == "object" and depth < _MAX_DEPTH:
                self._follow_keys(stats, event, value, key + ".", depth + 1)

    def report(self, *, offenders: int = 10) -> LintReport:
        """What the events added so far come to; at most ``offenders`` offenders."""
        target = self.target
        services = sorted(
            (
                ServiceScore(name, events, actionable, target, dict(by_rule.most_common()))
                for name, (events, actionable, by_rule) in self._services.items()
            ),
            key=lambda s: (s.share, s.service),
        )
        types = sorted(
            (
                TypeScore(
                    name,
                    stats.events,
                    stats.actionable,
                    tuple(sorted(stats.services)),
                    self.checker.is_known(name),
                    dict(stats.problems.most_common()),
                )
                for name, stats in self._types.items()
            ),
            key=lambda t: (t.share, -t.events, t.event_type),
        )
        rules = tuple(RuleScore(rule, self._rules[rule.id]) for rule in self.checker.rules)
        groups = sorted(self._offenders.items(), key=lambda item: (-item[1][0], item[0]))
        worst = tuple(
            Offender(
                service,
                event_type,
                rule,
                problem,
                count,
                example,
                violation.message,
                _evidence(service, event_type, violation),
            )
            for (service, event_type, rule, problem), (count, example, violation) in groups[
                :offenders
            ]
        )
        return LintReport(
            events=self._events,
            actionable=self._actionable,
            target=target,
            services=tuple(services),
            types=tuple(types),
            rules=rules,
            offenders=worst,
            offender_groups=len(groups),
            unknown_types=self._unknown_types(),
            type_changes=self._type_changes(),
            capped_types=tuple(sorted(self._capped)),
        )

    def _unknown_types(self) -> tuple[UnknownType, ...]:
        unknown = [name for name in self._types if not self.checker.is_known(name)]
        if not unknown:
            return ()
        # What a typo may have meant: a known type, or one seen more than once.
        usual = sorted(KNOWN_TYPES | {n for n, s in self._types.items() if s.events > 1})
        out = []
        for name in unknown:
            stats = self._types[name]
            close = difflib.get_close_matches(name, [u for u in usual if u != name], 1, 0.8)
            out.append(
                UnknownType(
                    name,
                    stats.events,
                    tuple(sorted(stats.services)),
                    stats.example,
                    close[0] if close else None,
                )
            )
        return tuple(sorted(out, key=lambda u: (u.count, u.event_type)))

    def _type_changes(self) -> tuple[TypeChange, ...]:
        out = []
        for name in sorted(self._types):
            for key, kinds in sorted(self._types[name].keys.items()):
                if len(kinds.keys() - {"null"}) > 1:
                    out.append(
                        TypeChange(
                            name,
                            key,
                            {kind: seen[0] for kind, seen in sorted(kinds.items())},
                            {kind: seen[1] for kind, seen in sorted(kinds.items())},
                        )
                    )
        return tuple(out)


def lint(
    events: Iterable[TelemetryEvent], config: LintConfig | None = None, *, offenders: int = 10
) -> LintReport:
    """Score ``events`` against the rules (:data:`RULES` and ``config``'s additions)."""
    linter = Linter(config)
    linter.add(events)
    return linter.report(offenders=offenders)
