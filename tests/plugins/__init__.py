"""Plugin modules loaded by ``tests/test_hooks.py`` into real ``wf`` processes.

They are imported by name (``-p tests.plugins.recorder`` or ``$WF_PLUGINS``), so the test puts
the repository root on ``PYTHONPATH``. Each one is configured through environment variables, since
it runs in a ``wf`` subprocess, not in the test process.
"""
