"""Fault primitives for testing wf: misbehaving tasks (``fault_injection.task``), …

``fault_injection.task`` is the "task kit": a small CLI, run as
``python -m fault_injection.task [--record FILE] [--label NAME] BEHAVIOUR [ARGS]``, that is
used as a step command in tests and misbehaves on purpose (fails, fails the first K times,
hangs, leaves a grandchild behind, ignores SIGTERM, floods its output, dies by a signal) while
recording what it did as JSON lines. Crash-injection plugins and disk-fault helpers will live
alongside it in this package.
"""
