"""Simulated EMP services over a real Redis: ``emp-tui demo`` and ``emp-tui sim``, and
:func:`run_scenario` for code that needs a scenario's events and its ground truth (see
:mod:`emp_tui.demo.ground_truth`)."""

from __future__ import annotations

from emp_tui.demo.cli import main
from emp_tui.demo.ground_truth import GroundTruth, SimulationError, run_scenario
from emp_tui.demo.model import INCIDENT_KINDS, FaultRates, Incident
from emp_tui.demo.scenarios import SCENARIOS

__all__ = [
    "INCIDENT_KINDS",
    "SCENARIOS",
    "FaultRates",
    "GroundTruth",
    "Incident",
    "SimulationError",
    "main",
    "run_scenario",
]
