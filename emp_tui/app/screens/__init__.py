"""Modal screens of the emp-tui app: jump to a job, export, confirm, help."""
