"""``python -m emp_tui.cli``: the same as the ``emp-tui`` command."""

from __future__ import annotations

import sys

from emp_tui.cli.main import main

sys.exit(main())
