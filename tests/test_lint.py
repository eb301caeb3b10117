"""Event standards: the rules table, one event's violations, a stream scored exactly (decoded
as a reader decodes it, and through a real Redis), config.toml's [lint] table, type changes
and unknown types."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from emp_tui.config import AppConfig, ConfigError, load_app_config
from emp_tui.events import TelemetryEvent, decode, trace_id_for_job
from emp_tui.lint import (
    KNOWN_TYPES,
    RULES,
    Checker,
    LintConfig,
    LintConfigError,
    Linter,
    LintReport,
    Violation,
    field_problem,
    lint,
    suggest_type,
)
from emp_tui.query import parse_query
from emp_tui.sources import read_range

T0 = 1_800_000_000_000
STREAM = "emp:events"


def wire(
    service: str, event_type: str, *, data: dict[str, Any] | None = None, **fields: str
) -> dict[str, str]:
    """An entry's fields as an emitter in any language writes them (a traceId derived from the
    jobId unless given or removed with traceId="")."""
    out = {"timestamp": str(T0), "service": service, "eventType": event_type}
    job = fields.get("jobId")
    trace = fields.pop("traceId", trace_id_for_job(job) if job else "ab" * 16)
    if trace:
        out["traceId"] = trace
    out.update(fields)
    if data is not None:
        out["data"] = orjson.dumps(data).decode()
    return out


# A stream mixing good and bad events; the comment says what each one breaks.
MIXED: list[dict[str, str]] = [
    wire("api-server", "job.created", jobId="j1"),  # ok
    wire("api-server", "job.queued", jobId="j1", data={"queueName": "default"}),  # ok
    wire("api-server", "job.created", data={"userId": "u1"}),  # required.job: jobId
    wire("api-server", "job.created", jobId="j2", traceId=""),  # required.all: traceId
    # ok: the workerId inside data is lifted by the decoder and counts as carried
    wire("worker", "job.claimed", jobId="j1", data={"workerId": "w1", "claimTimeMs": 1200}),
    wire("worker", "job.claimed", jobId="j2", data={"claimTimeMs": "1500"}),  # required.claim
    wire("worker", "JobDone", jobId="j1"),  # naming.shape
    wire("worker", "JobDone", jobId="j2"),  # naming.shape
    wire("worker", "job.progress", jobId="j1", data={"progress": 50}),  # naming.progress
    wire("worker", "connector.processing_error", jobId="j1", level="error"),  # naming.failure
    wire("worker", "job.completed", jobId="j1", level="error"),  # naming.error_level
    wire("worker", "worker.ready", workerId="w1"),  # ok
    wire("machine", "machine.ready", machineId="m1", data={"gpu": {"count": 2}}),  # ok
    wire("machine", "machine.ready", data={"gpu": {"count": "2"}}),  # required.machine
    {**wire("machine", "machine.starting", machineId="m1"), "timestamp": "soon"},  # required.all
    wire("monitor", "health_check.performed", data={"oldestPendingMs": None}),  # ok
    wire("monitor", "health_check.performed", data={"oldestPendingMs": 4000}),  # ok
]


def decoded(entries: list[dict[str, str]]) -> list[TelemetryEvent]:
    return [decode(f"{T0 + n}-0", fields) for n, fields in enumerate(entries)]


def assert_mixed_report(report: LintReport) -> None:
    """What MIXED comes to, worked out by hand from the comments above."""
    assert (report.events, report.actionable) == (17, 7)
    assert report.share == 7 / 17 and not report.meets_target
    scores = {s.service: (s.events, s.actionable, s.meets_target) for s in report.services}
    assert scores == {
        "api-server": (4, 2, False),
        "worker": (8, 2, False),
        "machine": (3, 1, False),
        "monitor": (2, 2, True),
    }
    assert [s.service for s in report.services] == ["worker", "machine", "api-server", "monitor"]
    by_service = {s.service: dict(s.by_rule) for s in report.services}
    assert by_service["worker"] == {
        "naming.shape": 2,
        "required.claim": 1,
        "naming.progress": 1,
        "naming.failure": 1,
        "naming.error_level": 1,
    }
    assert by_service["api-server"] == {"required.job": 1, "required.all": 1}
    assert {r.rule.id: r.broken for r in report.rules} == {
        "naming.shape": 2,
        "naming.progress": 1,
        "naming.failure": 1,
        "naming.error_level": 1,
        "required.all": 2,
        "required.job": 1,
        "required.worker": 0,
        "required.machine": 1,
        "required.claim": 1,
    }
    types = {t.event_type: (t.events, t.actionable, t.known) for t in report.types}
    assert types == {
        "job.created": (3, 1, True),
        "job.queued": (1, 1, True),
        "job.claimed": (2, 1, True),
        "JobDone": (2, 0, False),
        "job.progress": (1, 0, False),
        "connector.processing_error": (1, 0, False),
        "job.completed": (1, 0, True),
        "worker.ready": (1, 1, True),
        "machine.ready": (2, 1, True),
        "machine.starting": (1, 0, True),
        "health_check.performed": (2, 2, True),
    }
    created = next(t for t in report.types if t.event_type == "job.created")
    assert created.problems == {"jobId missing": 1, "traceId missing": 1}

    # The worst offender first, then the rest by service, type and rule.
    assert report.offender_groups == 9
    worst = report.offenders[0]
    assert (worst.service, worst.event_type, worst.rule, worst.count) == (
        "worker",
        "JobDone",
        "naming.shape",
        2,
    )
    assert worst.message == "no dot: name it {entity}.{action} (job.done?)"
    assert worst.example.job_id == "j1"  # the first seen
    assert [(o.service, o.event_type, o.rule, o.count) for o in report.offenders[1:]] == [
        ("api-server", "job.created", "required.all", 1),
        ("api-server", "job.created", "required.job", 1),
        ("machine", "machine.ready", "required.machine", 1),
        ("machine", "machine.starting", "required.all", 1),
        ("worker", "connector.processing_error", "naming.failure", 1),
        ("worker", "job.claimed", "required.claim", 1),
        ("worker", "job.completed", "naming.error_level", 1),
        ("worker", "job.progress", "naming.progress", 1),
    ]
    starting = next(o for o in report.offenders if o.event_type == "machine.starting")
    assert starting.message == "timestamp unreadable"  # grouped: every bad timestamp is one
    assert starting.detail.startswith("timestamp ") and "soon" in starting.detail

    unknown = {u.event_type: (u.count, u.one_off) for u in report.unknown_types}
    assert unknown == {
        "JobDone": (2, False),
        "job.progress": (1, True),
        "connector.processing_error": (1, True),
    }
    assert [u.event_type for u in report.unknown_types][-1] == "JobDone"  # one-offs first

    changes = {(c.event_type, c.key): dict(c.types) for c in report.type_changes}
    assert changes == {
        ("job.claimed", "claimTimeMs"): {"number": 1, "string": 1},
        ("machine.ready", "gpu.count"): {"number": 1, "string": 1},
    }
    claimed = next(c for c in report.type_changes if c.event_type == "job.claimed")
    assert claimed.examples["string"].job_id == "j2"
    assert claimed.examples["number"].job_id == "j1"


def test_a_mixed_stream_is_scored_exactly() -> None:
    assert_mixed_report(lint(decoded(MIXED)))


@pytest.mark.redis
def test_a_mixed_stream_read_from_redis_is_scored_exactly(rclient: redis.Redis) -> None:
    for fields in MIXED:
        rclient.xadd(STREAM, fields)  # type: ignore[arg-type]
    events = list(read_range(rclient, STREAM))
    assert len(events) == len(MIXED)
    assert_mixed_report(lint(events))


def test_offenders_carry_a_query_that_shows_their_events() -> None:
    events = decoded(MIXED)
    report = lint(events, offenders=100)
    evidence = {(o.event_type, o.rule): o.evidence for o in report.offenders}
    assert evidence[("JobDone", "naming.shape")] == "service:worker type:JobDone"
    assert evidence[("job.created", "required.job")] == "service:api-server type:job.created -job:*"
    assert evidence[("job.completed", "naming.error_level")] == (
        "service:worker type:job.completed level:error"
    )
    for offender in report.offenders:
        if offender.rule == "required.all":
            continue  # a derived traceId or timestamp: no term tells it apart
        assert offender.evidence is not None
        query = parse_query(offender.evidence)
        shown = [e for e in events if query.matches(e)]
        assert len(shown) == offender.count, offender.evidence
        for each in shown:
            problems = [(v.rule, v.problem) for v in Checker().check(each)]
            assert (offender.rule, offender.message) in problems


def test_fed_in_batches_the_report_is_the_same() -> None:
    events = decoded(MIXED)
    linter = Linter()
    linter.add(events[:5])
    assert linter.report().events == 5
    linter.add(events[5:])
    assert linter.report() == lint(events)


def test_the_report_is_json() -> None:
    report = lint(decoded(MIXED), offenders=2)
    whole = orjson.loads(orjson.dumps(report.to_dict()))
    assert (whole["events"], whole["actionable"], whole["meetsTarget"]) == (17, 7, False)
    assert whole["servicesBelowTarget"] == ["worker", "machine", "api-server"]
    assert len(whole["offenders"]) == 2 and whole["offenderGroups"] == 9
    assert whole["offenders"][0]["example"]["eventType"] == "JobDone"
    assert {r["id"] for r in whole["rules"]} == {rule.id for rule in RULES}
    lines = [orjson.loads(orjson.dumps(r)) for r in report.records()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "summary" and kinds.count("service") == 4 and kinds.count("offender") == 2
    assert kinds.count("typeChange") == 2 and kinds.count("unknownType") == 3


def test_an_empty_stream_scores_full_marks() -> None:
    report = lint([])
    assert (report.events, report.share, report.meets_target) == (0, 1.0, True)
    assert report.services == () and report.offenders == ()


# -- one event ----------------------------------------------------------------------------


def event(event_type: str, level: str | None = None, **ids: str) -> TelemetryEvent:
    return TelemetryEvent.create("worker", event_type, timestamp=T0, level=level, **ids)


@pytest.mark.parametrize(
    ("event_type", "level", "rule", "message"),
    [
        ("JobDone", None, "naming.shape", "no dot: name it {entity}.{action} (job.done?)"),
        ("job.progressUpdated", None, "naming.shape",
         "not lower snake_case (job.progress_updated?)"),
        ("Job.Created", None, "naming.shape", "not lower snake_case (job.created?)"),
        ("job.step.done", None, "naming.shape",
         "2 dots: name it {entity}.{action} with one dot (job.step_done?)"),
        ("job.", None, "naming.shape", "an empty entity or action"),
        ("2fa.sent", None, "naming.shape", "not lower snake_case"),
        ("job.progress", None, "naming.progress",
         "progress is {entity}.{status}_updated (job.progress_updated?)"),
        ("job.update_progress", None, "naming.progress",
         "progress is {entity}.{status}_updated (job.progress_updated?)"),
        ("job.status_update", None, "naming.progress",
         "progress is {entity}.{status}_updated (job.status_updated?)"),
        ("job.failure", None, "naming.failure",
         "a failure is {entity}.{action}_failed (job.failed?)"),
        ("connector.processing_error", "error", "naming.failure",
         "a failure is {entity}.{action}_failed (connector.processing_failed?)"),
        ("machine.started", "error", "naming.error_level",
         "level error, but not named as a failure (*_failed, *.failed, *.error)"),
    ],
)  # fmt: skip
def test_naming_rules(event_type: str, level: str | None, rule: str, message: str) -> None:
    assert Checker().check(event(event_type, level, job_id="j", machine_id="m")) == (
        Violation(rule, message),
    )


@pytest.mark.parametrize(
    "event_type",
    ["job.created", "job.progress_updated", "job.status_updated", "job.updated",
     "connector.processing_failed", "job.failed", "api.error", "health_check.performed",
     "redis_function.executing", "job.error_rate_updated", "pm2.service_started"],
)  # fmt: skip
def test_well_named_types_pass(event_type: str) -> None:
    level = "error" if event_type.endswith(("failed", ".error")) else None
    assert Checker().check(event(event_type, level, job_id="j", machine_id="m")) == ()


def test_required_fields_by_kind_of_event() -> None:
    check = Checker().check

    def missing(rule: str, name: str) -> Violation:
        return Violation(rule, f"{name} missing", name)

    assert check(event("job.created")) == (missing("required.job", "jobId"),)
    assert check(event("worker.ready")) == (missing("required.worker", "workerId"),)
    assert check(event("machine.ready")) == (missing("required.machine", "machineId"),)
    assert check(event("job.claimed", job_id="j")) == (missing("required.claim", "workerId"),)
    assert check(event("job.claimed")) == (
        missing("required.job", "jobId"),
        missing("required.claim", "workerId"),
    )
    assert check(event("connector.processing_started")) == ()  # not a job.* event
    # Naming and fields together; a type not of the shape is no job event.
    progress = "progress is {entity}.{status}_updated (job.progress_updated?)"
    assert check(event("job.progress")) == (
        Violation("naming.progress", progress),
        missing("required.job", "jobId"),
    )
    assert check(event("JobCreated")) == (
        Violation("naming.shape", "no dot: name it {entity}.{action} (job.created?)"),
    )


def test_the_checker_agrees_with_reading_every_field() -> None:
    clean = [
        TelemetryEvent.create("worker", "job.claimed", job_id="j", worker_id="w"),
        TelemetryEvent.create("worker", "job.claimed", job_id="j"),
        TelemetryEvent.create("api-server", "server.ready"),
    ]
    checker = Checker()
    for each in [*decoded(MIXED), *clean]:
        expected = [v for v in checker.check(each) if v.rule.startswith("naming.")]
        expected += [
            Violation(rule.id, problem, name)
            for rule in RULES
            if rule.kind == "required" and fnmatchcase(each.event_type, rule.types)
            for name in rule.fields
            if (problem := field_problem(each, name)) is not None
        ]
        assert checker.check(each) == tuple(expected), each
    # An event the decoder found nothing wrong with has only its IDs looked at.
    every, when_clean = checker._required_for("job.claimed")
    assert len(every) == 6
    assert when_clean == (("required.job", "jobId"), ("required.claim", "workerId"))


def test_field_problem_reads_what_the_decoder_recorded() -> None:
    lifted = decode("1-0", wire("worker", "job.claimed", jobId="j1", data={"workerId": "w1"}))
    assert lifted.worker_id == "w1" and field_problem(lifted, "workerId") is None
    derived = decode("1-0", wire("worker", "job.claimed", jobId="j1", traceId=""))
    assert derived.trace_id == trace_id_for_job("j1")  # filled in by the decoder ...
    assert field_problem(derived, "traceId") == "traceId missing"  # ... but never sent
    bare = decode("1-0", {"eventType": "job.claimed"})
    assert [field_problem(bare, f) for f in ("timestamp", "service", "eventType", "traceId")] == [
        "timestamp missing",
        "service missing",
        None,
        "traceId missing",
    ]
    bad_span = decode("1-0", wire("worker", "job.claimed", spanId="xyz"))
    assert field_problem(bad_span, "spanId") == "spanId is not 16 hex digits"
    good = decode("1-0", wire("worker", "job.claimed", jobId="j1", data={"p": {"q": 0}}))
    assert [field_problem(good, f) for f in ("timestamp", "jobId", "data.p.q")] == [None] * 3
    assert field_problem(good, "data.p.r") == "data.p.r missing"
    assert field_problem(good, "machineId") == "machineId missing"


def test_suggestions() -> None:
    assert suggest_type("JobDone") == "job.done"
    assert suggest_type("job-progress updated") == "job.progress_updated"
    assert suggest_type("HTTPRequest.Failed") == "http_request.failed"
    assert suggest_type("job.created") is None  # nothing to suggest
    assert suggest_type("unknown") is None
    assert suggest_type("...") is None


def test_the_rules_table_is_one_table() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert {rule.kind for rule in RULES} == {"naming", "required"}
    assert next(r for r in RULES if r.id == "required.all").fields == (
        "timestamp",
        "service",
        "eventType",
        "traceId",
    )
    # Every rule the checker reports is in the table.
    seen = {v.rule for fields in MIXED for v in Checker().check(decode("1-0", fields))}
    assert seen <= set(ids)
    # The known types follow the naming rules themselves.
    assert all(_naming_ok(name) for name in KNOWN_TYPES)


def _naming_ok(event_type: str) -> bool:
    return not [v for v in Checker().check(event(event_type)) if v.rule.startswith("naming")]


# -- unknown types and type changes -------------------------------------------------------


def test_unknown_types_name_what_a_typo_meant() -> None:
    events = [event("job.completd", job_id="j"), event("billing.invoice_sent")] + [
        event("billing.invoice_paid")
    ] * 2
    report = lint(events)
    found = {u.event_type: (u.count, u.one_off, u.similar) for u in report.unknown_types}
    assert found == {
        "job.completd": (1, True, "job.completed"),
        "billing.invoice_sent": (1, True, "billing.invoice_paid"),
        "billing.invoice_paid": (2, False, None),
    }
    known = lint(events, LintConfig(known_types=("billing.*",)))
    assert [u.event_type for u in known.unknown_types] == ["job.completd"]
    assert {t.event_type: t.known for t in known.types}["billing.invoice_paid"] is True


def test_type_changes_count_json_types_not_python_ones() -> None:
    def with_data(data: dict[str, Any]) -> TelemetryEvent:
        return TelemetryEvent.create("worker", "job.completed", data, job_id="j", timestamp=T0)

    events = [
        with_data({"ms": 1, "error": None, "tags": [], "meta": {"a": 1}, "ok": True}),
        with_data({"ms": 1.5, "error": "boom", "tags": ["x"], "meta": {"a": [1]}, "ok": 1}),
        with_data({"ms": None, "error": None, "tags": {}, "meta": "none", "ok": False}),
    ]
    changes = {c.key: dict(c.types) for c in lint(events).type_changes}
    assert changes == {
        # int and float are both numbers; null beside one other type is no change
        "meta": {"object": 2, "string": 1},
        "meta.a": {"array": 1, "number": 1},
        "ok": {"boolean": 2, "number": 1},
        "tags": {"array": 2, "object": 1},
    }


def test_type_changes_are_per_event_type() -> None:
    a = TelemetryEvent.create("worker", "job.completed", {"n": 1}, job_id="j")
    b = TelemetryEvent.create("worker", "job.failed", {"n": "1"}, job_id="j")
    assert lint([a, b]).type_changes == ()


# -- the [lint] table ----------------------------------------------------------------------


def test_config_adds_required_fields_and_exemptions() -> None:
    config = LintConfig.from_toml(
        {
            "target": 0.4,
            "required": {"job.queued": ["data.queueName", "userId"], "connector.*": ["jobId"]},
            "exempt": {"naming.shape": ["Job*"], "required": ["machine.*"]},
        }
    )
    assert [r.id for r in config.rules()][-2:] == ["required[job.queued]", "required[connector.*]"]
    report = lint(decoded(MIXED), config)
    # JobDone x2 and machine.ready/machine.starting are exempt now; job.queued lacks userId.
    scores = {s.service: (s.events, s.actionable, s.meets_target) for s in report.services}
    assert scores == {
        "api-server": (4, 1, False),
        "worker": (8, 4, True),
        "machine": (3, 3, True),
        "monitor": (2, 2, True),
    }
    assert (report.actionable, report.target) == (10, 0.4)
    queued = next(o for o in report.offenders if o.event_type == "job.queued")
    assert (queued.rule, queued.message) == ("required[job.queued]", "userId missing")
    assert queued.evidence == "service:api-server type:job.queued -user:*"
    assert {r.rule.id: r.broken for r in report.rules}["required[connector.*]"] == 0


def test_a_data_field_can_be_required() -> None:
    config = LintConfig(required={"job.progress_updated": ("data.progress",)})
    check = Checker(config).check
    with_progress = TelemetryEvent.create("w", "job.progress_updated", {"progress": 5}, job_id="j")
    without = TelemetryEvent.create("w", "job.progress_updated", {"step": 1}, job_id="j")
    assert check(with_progress) == ()
    assert check(without) == (
        Violation("required[job.progress_updated]", "data.progress missing", "data.progress"),
    )
    report = lint([without], config)
    assert report.offenders[0].evidence == "service:w type:job.progress_updated -data.progress:*"


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"target": "high"}, "[lint] target must be a number"),
        ({"target": 95}, "between 0 and 1"),
        ({"target": True}, "[lint] target must be a number"),
        ({"known_types": "job.*"}, "known_types must be a list"),
        ({"required": ["jobId"]}, "[lint.required] maps type globs"),
        ({"required": {"job.*": "jobId"}}, "must be a list of field names"),
        ({"required": {"job.*": []}}, "names no field"),
        ({"required": {"job.*": ["jobid"]}}, "unknown field 'jobid'"),
        ({"required": {"job.*": ["data."]}}, "unknown field 'data.'"),
        ({"exempt": {"naming.shap": ["X"]}}, "unknown rule 'naming.shap'"),
        ({"exempt": {"naming": "X"}}, "must be a list of type globs"),
        ({"colour": 1}, "[lint] unknown setting 'colour'"),
    ],
)
def test_bad_lint_tables_are_one_line_errors(table: dict[str, Any], complaint: str) -> None:
    with pytest.raises(LintConfigError) as caught:
        LintConfig.from_toml(table)
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value)


def test_config_toml_reads_the_lint_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'theme = "nord"\n'
        "[lint]\n"
        "target = 0.9\n"
        'known_types = ["billing.*"]\n'
        "[lint.required]\n"
        '"connector.*" = ["jobId", "data.connectorType"]\n'
        "[lint.exempt]\n"
        '"naming.shape" = ["LegacyEvent"]\n'
    )
    config = load_app_config(path)
    assert config.lint == LintConfig(
        target=0.9,
        required={"connector.*": ("jobId", "data.connectorType")},
        exempt={"naming.shape": ("LegacyEvent",)},
        known_types=("billing.*",),
    )
    assert AppConfig().lint == LintConfig()  # no [lint] table: the plan's rules alone


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("lint = 1", "lint must be a table"),
        ("[lint]\ntarget = 2", "[lint] target is a share between 0 and 1"),
        ('[lint.exempt]\nbogus = ["x"]', "[lint.exempt] unknown rule 'bogus'"),
    ],
)
def test_config_toml_lint_errors_name_the_file(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_app_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


# -- the platform's own events --------------------------------------------------------------


@pytest.mark.redis
def test_the_demo_services_follow_the_standards(redis_url: str) -> None:
    from emp_tui.demo import FaultRates, run_scenario

    run_scenario(redis_url, STREAM, "mixed", seed=2, faults=FaultRates())
    with redis.Redis.from_url(redis_url) as client:
        events = list(read_range(client, STREAM))
    report = lint(events)
    assert report.events > 1000
    assert report.share == 1.0, [o.to_dict() for o in report.offenders]
    assert report.unknown_types == ()  # KNOWN_TYPES covers every type the platform emits
    assert report.type_changes == ()


def test_what_differs_per_event_is_grouped_as_one_problem() -> None:
    entries = [
        {**wire("machine", "machine.starting", machineId="m1"), "timestamp": bad}
        for bad in ("soon", "later", "2026-13-45")
    ]
    report = lint(decoded(entries))
    (offender,) = report.offenders
    assert (offender.message, offender.count) == ("timestamp unreadable", 3)
    assert "soon" in offender.detail  # the first event's own reason
    assert report.types[0].problems == {"timestamp unreadable": 3}


def test_keys_past_the_cap_are_not_followed_and_say_so() -> None:
    from emp_tui.lint import MAX_KEYS_PER_TYPE

    by_id = {f"job_{n}": n for n in range(MAX_KEYS_PER_TYPE + 10)}
    events = [
        TelemetryEvent.create("monitor", "health_check.performed", {"a": 1, **by_id}),
        TelemetryEvent.create("monitor", "health_check.performed", {"a": "1", "job_300": "x"}),
    ]
    report = lint(events)
    assert report.capped_types == ("health_check.performed",)
    assert [c.key for c in report.type_changes] == ["a"]  # job_300 was past the cap
    assert report.to_dict()["cappedTypes"] == ["health_check.performed"]
