"""Simulated EMP services over a real Redis: ``emp-tui demo`` and ``emp-tui sim``."""

from __future__ import annotations

from emp_tui.demo.cli import main

__all__ = ["main"]
