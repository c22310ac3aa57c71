#!/usr/bin/env python3
"""Run wf from a checkout: ``python workflow.py run|status|cancel|replay|resume ...``.

Without the dependencies installed it says how to install them, instead of a traceback.
"""

import importlib.util
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
#: What ``wf`` needs to run (pyproject.toml's ``dependencies``), by import name.
NEEDED = ("click", "pluggy")


def missing_dependencies() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


if __name__ == "__main__":
    missing = missing_dependencies()
    if missing:
        sys.stderr.write(
            f"wf: {' and '.join(missing)} not installed; wf needs them. Install wf and its "
            "dependencies into this Python with:\n"
            f"    {shlex.quote(sys.executable)} -m pip install -e {shlex.quote(HERE)}\n"
        )
        sys.exit(2)
    sys.path.insert(0, HERE)

    from wf_engine.cli import main

    main()
