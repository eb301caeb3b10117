"""Widgets of the emp-tui app (the stream, filter bar, detail, status bar, job timeline and
handoff graph). They render state and post messages; none does I/O."""
