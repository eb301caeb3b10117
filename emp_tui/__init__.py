"""emp-tui: a terminal debugger and a headless collector for EMP's telemetry events."""

__version__ = "0.1.0"
