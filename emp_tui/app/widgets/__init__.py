"""Reusable widgets of the app: the job timeline and the service handoff graph."""
