#!/usr/bin/env python3
"""Run wf from a checkout: ``python workflow.py run|status|cancel|replay|resume ...``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wf_engine.cli import main

if __name__ == "__main__":
    main()
