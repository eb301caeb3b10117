"""Widgets of the emp-tui app. They render state and post messages; none does I/O."""
