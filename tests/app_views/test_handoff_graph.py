"""HandoffGraph driven through Pilot: counts and percentiles, highlights, scope, empty, inert."""

from __future__ import annotations

from rich.color import Color as RichColor
from samples import crossing_job, fleet_edges
from textual.widgets import Static

from emp_tui.analysis import HandoffEdge, handoffs
from emp_tui.app.style import ERROR_COLOR, WARN_COLOR
from emp_tui.app.widgets.graph import HandoffDiagram, HandoffGraph, HandoffTable

from .apps import GraphApp
from .conftest import lines, strips

X = "\N{MULTIPLICATION SIGN}"


def row_color(widget: HandoffTable, text: str, cell: str) -> RichColor | None:
    """The colour of ``cell`` on the table row that contains ``text``."""
    for strip in strips(widget):
        if text in strip.text:
            for segment in strip:
                if cell in segment.text and segment.style is not None:
                    return segment.style.color
    raise AssertionError(f"no row with {text!r} and {cell!r}")


async def test_table_shows_counts_and_percentiles_problems_first() -> None:
    app = GraphApp(fleet_edges(), slow_ms=5_000)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = lines(app.query_one(HandoffTable))
        assert table[0].split() == ["from", "to", "count", "p50", "p95", "max", "errors"]
        rows = [line.split() for line in table[1:] if line]
        # failing first, then slow, then by count
        assert rows[0][:8] == [
            "worker",
            "→",
            "webhook-service",
            "377",
            "15ms",
            "60ms",
            "240ms",
            "8%",
        ]
        assert "✖ failing" in table[1]
        assert rows[1][:8] == ["worker", "→", "machine", "409", "850ms", "9.8s", "31s", "-"]
        assert "⚠ slow" in table[2]
        assert [row[0] + ">" + row[2] for row in rows[2:]] == [
            "api-server>worker",
            "machine>worker",
            "webhook-service>api-server",
            "monitor>worker",
        ]
        widget = app.query_one(HandoffTable)
        assert row_color(widget, "webhook-service", "377") == RichColor.parse(ERROR_COLOR)
        assert row_color(widget, "→ machine", "409") == RichColor.parse(WARN_COLOR)
        plain = row_color(widget, "api-server", "412")
        assert plain not in (RichColor.parse(ERROR_COLOR), RichColor.parse(WARN_COLOR))
        summary = "\n".join(lines(app.query_one("#graph-scope", Static)))
        assert "6 edges · 1,979 handoffs · 1 failing · 1 slow (p95 > 5s)" in summary


async def test_diagram_draws_boxes_and_labelled_arcs() -> None:
    app = GraphApp(fleet_edges())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        diagram = lines(app.query_one(HandoffDiagram))
        text = "\n".join(diagram)
        box_line = next(line for line in diagram if "│ api-server │" in line)
        # One box per service, in a row; the main flow runs left to right.
        flow = ["api-server", "worker", "machine", "webhook-service"]
        positions = [box_line.index(f"│ {name} │") for name in flow]
        assert positions == sorted(positions)
        assert "│ monitor │" in box_line
        assert f"412{X} p95 120ms" in text
        assert f"409{X} p95 9.8s" in text
        assert f"377{X} p95 60ms ✖8%" in text
        assert "▼" in text and "▲" in text  # forward arcs above, backward arcs below
        above = diagram[: diagram.index(box_line)]
        below = diagram[diagram.index(box_line) + 1 :]
        assert any(f"412{X}" in line for line in above)  # api-server -> worker runs forward
        assert any(f"371{X}" in line for line in below)  # webhook-service -> api-server runs back


async def test_given_nodes_set_the_box_order() -> None:
    order = ["webhook-service", "machine", "worker", "api-server", "monitor"]
    app = GraphApp(fleet_edges(), nodes=order)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        box_line = next(
            line for line in lines(app.query_one(HandoffDiagram)) if "│ worker │" in line
        )
        assert [box_line.index(f"│ {name} │") for name in order] == sorted(
            box_line.index(f"│ {name} │") for name in order
        )


async def test_scope_toggle_posts_and_relabels() -> None:
    app = GraphApp(handoffs(crossing_job()), detail="job_7f3a")
    async with app.run_test(size=(100, 30)) as pilot:
        graph = app.query_one(HandoffGraph)
        label = app.query_one("#graph-scope", Static)
        await pilot.pause()
        assert graph.scope == "job"
        assert "scope: this job (job_7f3a)" in lines(label)[0]
        await pilot.press("g")
        await pilot.pause()
        assert graph.scope == "all"
        assert "scope: all jobs at hand" in "".join(lines(label))
        await pilot.press("g")
        await pilot.pause()
        assert [m.scope for m in app.posted if isinstance(m, HandoffGraph.ScopeToggled)] == [
            "all",
            "job",
        ]
        assert all(m.control is graph for m in app.posted)
        # Setting the scope from code (the app restoring state) posts nothing.
        graph.scope = "all"
        await pilot.pause()
        assert len(app.posted) == 2


async def test_no_edges_says_no_handoffs_yet_then_shows_new_edges() -> None:
    app = GraphApp([])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        graph = app.query_one(HandoffGraph)
        assert "no handoffs yet" in "\n".join(lines(app.query_one("#graph-empty", Static)))
        assert not app.query_one(HandoffTable).display
        graph.set_edges(fleet_edges()[:1], detail="job_1")
        await pilot.pause()
        assert not app.query_one("#graph-empty", Static).display
        table = lines(app.query_one(HandoffTable))
        assert table[1].split()[:4] == ["api-server", "→", "worker", "412"]


async def test_narrow_pane_keeps_the_table_and_says_why_the_diagram_is_missing() -> None:
    app = GraphApp(fleet_edges())
    async with app.run_test(size=(44, 24)) as pilot:
        await pilot.pause()
        diagram = "\n".join(lines(app.query_one(HandoffDiagram)))
        assert "too narrow for the diagram" in diagram
        table = lines(app.query_one(HandoffTable))
        assert any("377" in line for line in table)
        assert all(len(line) <= 42 for line in table)


async def test_hostile_service_names_render_inert() -> None:
    evil = "[bold]evil[/bold]\x1b[2J\r"
    edges = [
        HandoffEdge("api-server", evil, 3, 10.0, 20.0, 30.0, 0.0),
        HandoffEdge(evil, "x" * 10_000, 2, 10.0, 20.0, 30.0, 0.5),
    ]
    app = GraphApp(edges, detail="[red]filter[/red]\x1b")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        shown = "\n".join(
            "\n".join(lines(app.query_one(selector)))
            for selector in ("#graph-scope", "#graph-diagram", "#graph-table")
        )
        assert "\x1b" not in shown and "\r" not in shown
        assert "[bold]evil[/bold]\\x1b[2J\\r"[:14] in shown
        assert "[red]filter[/red]\\x1b" in shown
        assert all(len(line) <= 120 for line in shown.splitlines())


async def test_wide_characters_in_names_keep_the_diagram_aligned() -> None:
    edges = [HandoffEdge("api-server", "ワーカー", 3, 10.0, 20.0, 30.0, 0.0)]
    app = GraphApp(edges)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        diagram = strips(app.query_one(HandoffDiagram))
        assert len({strip.cell_length for strip in diagram}) == 1
        box_line = next(strip.text for strip in diagram if "api-server" in strip.text)
        assert "│ ???? │" in box_line  # the grid shows it as narrow placeholders
        assert any("ワーカー" in line for line in lines(app.query_one(HandoffTable)))


async def test_a_narrow_table_drops_max_and_p50_before_cutting_rows() -> None:
    app = GraphApp(fleet_edges())
    async with app.run_test(size=(50, 30)) as pilot:
        await pilot.pause()
        table = lines(app.query_one(HandoffTable))
        assert table[0].split() == ["from", "to", "count", "p95", "errors"]
        assert table[1].split()[-3:] == ["377", "60ms", "8%"]
        assert all(len(line) <= 48 and not line.endswith("…") for line in table)


async def test_one_edge_and_one_handoff_are_singular_and_the_key_sits_in_the_border() -> None:
    edge = HandoffEdge("api-server", "worker", 1, 20.0, 20.0, 20.0, 0.0)
    app = GraphApp([edge], detail="job_1")
    async with app.run_test(size=(40, 20)) as pilot:
        await pilot.pause()
        graph = app.query_one(HandoffGraph)
        label = lines(app.query_one("#graph-scope", Static))
        assert label[1].startswith("1 edge · 1 handoff")
        assert "edges" not in label[1] and "handoffs" not in label[1]
        # Two lines, each cut rather than wrapped; the key is in the border.
        assert len(label) == 2
        assert "g:" not in "".join(label)
        assert graph.border_subtitle == "g: all jobs"
        await pilot.press("g")
        await pilot.pause()
        assert graph.border_subtitle == "g: this job"


async def test_service_names_are_whole_where_there_is_room() -> None:
    # The four services of a job, in a pane of 62 cells (the graph pane at 160 columns).
    edges = [
        HandoffEdge("api-server", "worker", 3, 20.0, 20.0, 20.0, 0.0),
        HandoffEdge("worker", "machine", 3, 20.0, 20.0, 20.0, 0.0),
        HandoffEdge("machine", "worker", 3, 20.0, 20.0, 20.0, 0.0),
        HandoffEdge("worker", "webhook-service", 3, 20.0, 20.0, 20.0, 1 / 3),
    ]
    app = GraphApp(edges)
    async with app.run_test(size=(62, 30)) as pilot:
        await pilot.pause()
        diagram = "\n".join(lines(app.query_one(HandoffDiagram)))
        table = "\n".join(lines(app.query_one(HandoffTable)))
        assert "│ webhook-service │" in diagram
        assert "→ webhook-service" in table and "…" not in table
