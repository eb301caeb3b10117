"""The Problems view's state, its pacing, where Esc goes, and the words of "compare with usual",
without Textual (emp_tui.app.triage)."""

from __future__ import annotations

from dataclasses import replace

from samples import (
    HOSTILE_TEXT,
    START_MS,
    event,
    fleet_job,
    sample_events,
    triage_sample,
    with_stream_ids,
)

from emp_tui.analysis import compare_with_usual
from emp_tui.app.triage import (
    ApplyFilter,
    Handoff,
    Navigation,
    OpenJob,
    Pacer,
    ProblemsState,
    Triage,
    TriageRequest,
    comparison_lines,
    lint_rows,
    primary_action,
    triage,
)
from emp_tui.history import TimeRange, event_ms
from emp_tui.lint import lint
from emp_tui.problems import Finding, StreamState
from emp_tui.text import clock

NOW = triage_sample()[-1].timestamp


def _found(events=None, **kw) -> Triage:  # type: ignore[no-untyped-def]
    events = triage_sample() if events is None else events
    return triage(events, TriageRequest(now_ms=NOW, gap_ms=5000, **kw))


def _plain(line) -> str:  # type: ignore[no-untyped-def]
    return "".join(text for text, _ in line)


# -- what was found ---------------------------------------------------------------------------


def test_triage_finds_the_stories_and_scores_the_standards() -> None:
    found = _found()
    kinds = [(f.kind, f.severity) for f in found.findings]
    assert kinds[:2] == [("stalled", "error"), ("failure-cluster", "error")]
    assert found.events == len(triage_sample()) and found.now_ms == NOW
    assert found.lint is not None and found.lint.services[0].service == "legacy-api"
    assert found.first_ms == START_MS and found.last_ms == NOW


def test_enter_opens_a_job_finding_and_filters_by_a_clusters_evidence() -> None:
    by_kind = {f.kind: f for f in reversed(_found().findings)}
    assert primary_action(by_kind["stalled"]) == OpenJob("job-0100")
    burst = by_kind["failure-cluster"]
    assert len(burst.jobs) == 8
    # The evidence, from where the burst starts.
    assert primary_action(burst) == ApplyFilter(burst.evidence or "", burst.first_ms)
    # A cluster of one job opens it; a finding with neither has nothing to open.
    single = Finding("failure-cluster", "info", "t", 0, 0, job_id="j", jobs=("j",), evidence="x")
    assert primary_action(single) == OpenJob("j")
    assert primary_action(Finding("trim-loss", "error", "t", 0, 0)) is None


# -- rows and the cursor ----------------------------------------------------------------------


def test_rows_findings_first_then_a_compact_standards_section() -> None:
    state = ProblemsState()
    state.update(_found())
    texts = [_plain(row.line) for row in state.rows]
    findings = len(state.findings)
    assert all(state.rows[i].key.startswith("finding:") for i in range(findings))
    assert texts[0].startswith("✖ 12:00:48 stalled: job-0100")
    heading = texts[findings]
    assert heading.startswith("Event standards 97.7% of 302 events actionable")
    assert not state.rows[findings].selectable
    assert any(t.startswith("  ✖ legacy-api 0.0% (0 of 4)") for t in texts)
    assert any("every service" not in t and t.startswith("  ✓ meet it: ") for t in texts)
    offender = next(r for r in state.rows if r.key.startswith("offender:worker:job.claimed"))
    assert offender.action == ApplyFilter(
        "service:worker type:job.claimed -worker:*", START_MS + 20_800
    )
    assert _plain(offender.line) == "  ✖ 3x worker job.claimed: workerId missing"
    assert state.title() == "5 found: 2 errors, 2 warnings, 1 info"
    assert state.subtitle() == "over 302 events · standards 97.7%, 1 below 95%"
    assert _plain(state.badge()) == "✖2 ▲2 ●1 "


def test_the_cursor_follows_the_worst_problem_until_it_is_moved() -> None:
    state = ProblemsState()
    state.update(_found(sample_events()))
    first = state.rows[0].key
    state.update(_found())  # a worse problem now: the untouched cursor is on it
    assert state.cursor == 0 and state.rows[0].key != first
    assert state.selected is not None and state.selected.key.startswith("finding:stalled:")


def test_the_subtitle_says_when_the_stream_holds_more_than_was_searched() -> None:
    state = ProblemsState()
    stream = StreamState("emp:events", length=9812)
    state.update(_found(stream=stream))
    assert state.subtitle().startswith("over the newest 302 of 9,812 in the stream · ")
    state.update(_found(stream=StreamState("emp:events", length=302)))
    assert state.subtitle().startswith("over 302 events · ")


def test_the_cursor_skips_headings_and_stays_on_its_finding_as_findings_change() -> None:
    state = ProblemsState()
    state.update(_found())
    assert state.cursor == 0
    state.move(1)
    burst_key = state.rows[1].key
    assert burst_key.startswith("finding:failure-cluster:")
    findings = len(state.findings)
    state.move_to(findings - 1)
    state.move(1)  # over the heading, onto the first selectable standards row
    assert state.rows[state.cursor].selectable and state.cursor > findings
    state.move(-1)
    assert state.cursor == findings - 1
    state.move(100)
    assert state.cursor == max(i for i, row in enumerate(state.rows) if row.selectable)
    # New events: a newer finding comes first, the selection stays on the burst.
    state.move_to(1)
    later = [*triage_sample(), *fleet_job(99, NOW + 1000, seq=90_000, fail=True)]
    state.update(triage(later, TriageRequest(now_ms=NOW + 70_000, gap_ms=5000)))
    assert state.selected is not None and state.selected.key == burst_key
    assert state.cursor != 1 or state.rows[1].key == burst_key


def test_waiting_and_nothing_found_are_said_not_selected() -> None:
    state = ProblemsState()
    assert state.selected is None and "No events yet" in _plain(state.rows[0].line)
    state.waiting(1234)
    assert _plain(state.rows[0].line) == "Looking for problems in 1,234 events …"
    quiet = with_stream_ids(
        [e for i in range(12) for e in fleet_job(i, START_MS + i * 5000, seq=i * 20)]
    )
    state.update(_found(quiet))
    assert _plain(state.rows[0].line).startswith("No problems found in ")
    assert state.selected is None or state.selected.key.startswith("unknown:")
    assert state.title() == "none found" and state.top() is None


def test_event_text_in_rows_is_inert() -> None:
    events = [
        *sample_events(),
        event(5000, START_MS + 9000, "worker", "connector.processing_failed",
              {"error": HOSTILE_TEXT}, job_id="job-0003", level="error"),
        event(5001, START_MS + 9001, "worker\x1b[2J", "Job\u202eDone", {"x": HOSTILE_TEXT}),
    ]  # fmt: skip
    state = ProblemsState()
    state.update(_found(events))
    for row in state.rows:
        for line in (row.line, *row.detail):
            for text, _style in line:
                assert not any(c in text for c in "\x1b\u202e\x9b\x7f\n\r"), row.key


def test_lint_rows_list_at_most_five_of_each_and_say_how_many_more() -> None:
    events = [
        event(n, START_MS + n, f"svc-{n % 7}", f"Bad{n % 9}Type", {"k": n if n % 2 else str(n)})
        for n in range(200)
    ]
    rows = lint_rows(lint(events, offenders=10))
    keys = [row.key for row in rows]
    assert sum(k.startswith("offender:") for k in keys) == 5
    assert sum(k.startswith("unknown:") for k in keys) == 5
    more = [_plain(row.line) for row in rows if row.key.startswith("more:")]
    assert more[0].strip().startswith("… 58 more ways events break the rules")
    assert any("… 4 more unknown types" in m for m in more)


# -- pacing -----------------------------------------------------------------------------------


def test_the_pacer_waits_for_changes_and_for_the_cost_of_the_last_search() -> None:
    pacer = Pacer(interval=3.0, share=0.1)
    assert pacer.due(0.0)
    pacer.start(0.0)
    assert not pacer.due(100.0)  # one at a time
    pacer.done(0.5)
    assert not pacer.due(100.0)  # nothing changed
    pacer.changed()
    assert not pacer.due(4.0)  # 0.5 s of work: at most one search every 5 s
    assert pacer.due(5.0)
    pacer.start(5.0)
    pacer.done(0.01)
    assert not pacer.due(8.5)
    assert not pacer.due(7.0, ages=True)  # within the interval
    assert pacer.due(8.01, ages=True)  # a live clock ages the findings by itself


# -- navigation -------------------------------------------------------------------------------


def test_esc_goes_back_through_what_was_done() -> None:
    nav = Navigation()
    assert nav.slot(None, 0) == "problems"
    # Enter on a finding: job A opens; Esc closes it and comes back to the problems.
    nav.chose_job(0)
    assert nav.slot("A", 1) == "timeline"
    nav.compare(1)
    assert nav.slot("A", 1) == "compare"
    assert nav.back(1).kind == "compare"
    assert nav.slot("A", 1) == "timeline"
    assert nav.back(1).kind == "problems"
    assert nav.slot(None, 0) == "problems"
    assert nav.back(0).kind == "none"


def test_problems_over_an_open_job_and_a_filter_from_them() -> None:
    nav = Navigation()
    nav.pin("A", 1)  # `!` with job A open
    assert nav.slot("A", 1) == "problems"
    nav.chose_filter(1, "service:worker")
    assert nav.slot("A", 1) == "problems"
    nav.chose_job(1)  # then a job from the problems: B
    assert nav.slot("B", 2) == "timeline"
    assert nav.back(2).kind == "problems"  # B closes, the problems over A again
    assert nav.slot("A", 1) == "problems"
    back = nav.back(1)
    assert (back.kind, back.text) == ("filter", "service:worker")
    assert nav.back(1).kind == "pin"
    assert nav.slot("A", 1) == "timeline"
    assert nav.back(1).kind == "job"


def test_reopening_the_open_job_shows_its_timeline_and_u_toggles() -> None:
    nav = Navigation()
    nav.pin("A", 1)
    nav.reopened(1)
    assert nav.slot("A", 1) == "timeline"
    nav.compare(1)
    nav.uncompare(1)
    assert nav.slot("A", 1) == "timeline" and nav.back(1).kind == "job"


# -- compare with usual -----------------------------------------------------------------------


def test_comparison_lines_say_the_slow_step_missing_events_and_different_fields() -> None:
    events = sample_events()
    own = [e for e in events if e.job_id == "job-0005"]
    # Job 5 also ran on a worker no other job had, and never sent its webhook.
    own = [replace(e, worker_id="worker-77") if e.worker_id else e for e in own[:-1]]
    others = [e for e in events if e.job_id != "job-0005"]
    comparison = compare_with_usual(own, "job-0005", reference=others)
    lines = [_plain(line) for line in comparison_lines(comparison)]
    assert lines[0].startswith("job job-0005 (comfyui) took 13.3s · usually 1.1")
    assert "beside 22 typical jobs of comfyui" in lines[0]
    slow = next(line for line in lines if "job.queued → job.claimed" in line)
    assert slow.startswith("▲") and "12s" in slow and slow.endswith("slower than usual")
    assert any(line.startswith("  ▲ missing webhook.delivered (in 100% of them)") for line in lines)
    worker = next(line for line in lines if "worker " in line and "77" in line)
    assert worker.startswith("  ▲ worker") and "usually worker-" in worker


def test_comparison_with_nothing_to_compare() -> None:
    job = fleet_job(1, START_MS)
    lines = [_plain(line) for line in comparison_lines(compare_with_usual(job, "job-0001"))]
    assert lines[-1] == "No other job of its type is at hand to compare with."


def test_the_handoff_gives_the_events_to_the_thread_once_or_gives_up_when_cancelled() -> None:
    import threading

    events = sample_events()
    handoff = Handoff()
    taken: list[object] = []
    thread = threading.Thread(target=lambda: taken.append(handoff.take(lambda: False, 0.01)))
    thread.start()
    handoff.give(events, TriageRequest(now_ms=NOW, gap_ms=5000))
    thread.join(5)
    assert not thread.is_alive()
    ((given, request),) = taken  # type: ignore[misc]
    assert given is events and request.now_ms == NOW
    stopping = Handoff()
    assert stopping.take(lambda: True, 0.01) is None  # the app stops: no wait for ever


def test_a_search_held_to_a_past_range_judges_its_jobs_at_the_ranges_end() -> None:
    """The app looking at a past range (``until:`` a while ago) gives the search that range
    and its end as "now": a job still running at that end is not stalled for the time
    since, and what came after the range is not looked at."""
    events = with_stream_ids(
        [e for n in range(30) for e in fleet_job(n, START_MS + n * 2_000, seq=n * 20)]
    )
    job = [e for e in events if e.job_id == "job-0015"]
    end = job[3].timestamp  # claimed and started, not finished
    within = TimeRange(None, end)

    def about_the_job(found: Triage) -> list[str]:
        return [f.kind for f in found.findings if "job-0015" in f"{f.title} {f.evidence}"]

    at_end = triage(events, TriageRequest(now_ms=end, gap_ms=5000, within=within))
    assert at_end.within == within and at_end.last_ms == end
    assert at_end.events == sum(1 for e in events if event_ms(e) <= end)
    assert about_the_job(at_end) == []
    # The same range judged ten minutes on: what the app did before it held the judgement
    # to the range's end (the job looked stalled).
    later = triage(events, TriageRequest(now_ms=end + 600_000, gap_ms=5000, within=within))
    assert about_the_job(later) != []
    # All of them: the job finished.
    whole = triage(events, TriageRequest(now_ms=end + 600_000, gap_ms=5000))
    assert whole.events == len(events) and about_the_job(whole) == []
    state = ProblemsState()
    state.update(at_end)
    assert f" …-{clock(end)[:8]}" in state.subtitle()
