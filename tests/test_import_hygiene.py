"""Textual stays inside the app: the core, the emitter and the collector never load it."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Every module that must import without Textual (and without Rich, for the emitter).
CORE_MODULES = [
    "emp_tui.events",
    "emp_tui.text",
    "emp_tui.stream_ids",
    "emp_tui.telemetry",
    "emp_tui.topology",
    "emp_tui.spill",
    "emp_tui.config",
    "emp_tui.redact",
    "emp_tui.health",
    "emp_tui.query",
    "emp_tui.store",
    "emp_tui.app.state",
    "emp_tui.app.triage",
    "emp_tui.analysis",
    "emp_tui.problems",
    "emp_tui.lint",
    "emp_tui.sources",
    "emp_tui.logindex",
    "emp_tui.history",
    "emp_tui.export",
    "emp_tui.cli",
    "emp_tui.app.style",  # the CLI's colours: plain strings, no Rich
    "collector",
    "collector.__main__",
    "collector.config",
    "collector.pipeline",
    "collector.reader",
    "collector.health",
    "collector.otel",
    "collector.http",
    "collector.spool",
    "collector.batch",
    "collector.batcher",
    "collector.acks",
    "collector.exporters.file",
    "collector.exporters.otlp",
    "emp_tui.demo",
    "emp_tui.demo.sim",
    "emp_tui.demo.queue",
    "emp_tui.demo.embedded",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"{module} loaded {done.stdout.strip()}"
