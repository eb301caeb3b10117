"""``python -m emp_tui.demo demo|sim ...``: the same as ``emp-tui demo|sim ...``."""

from __future__ import annotations

import sys

from emp_tui.demo.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
