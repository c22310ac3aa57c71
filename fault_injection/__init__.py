"""Fault primitives for testing wf, usable from any test runner or a shell (needs only wf_engine).

* ``fault_injection.crash``: a wf plugin that SIGKILLs the engine at record N (before the write,
  before the fsync, after it, or a power loss), and reports where it died.
* ``fault_injection.powerloss``: what a power cut does to a killed run's folder.
* ``fault_injection.disk``: the engine's Nth write or fsync fails (EIO, ENOSPC).
* ``fault_injection.logfaults``: tear, pad, corrupt or partly lose an event log.
* ``fault_injection.executions``: a wf plugin journaling every attempt an engine really starts.
* ``fault_injection.task``: the "task kit", a step command that misbehaves on purpose (fails,
  fails the first K times, hangs, leaves a grandchild behind, ignores SIGTERM, floods its
  output, dies by a signal) while recording what it did, run as
  ``python -m fault_injection.task [--record FILE] [--label NAME] BEHAVIOUR [ARGS]``.

The plugins are switched on by environment variables (``WF_PLUGINS`` and ``WF_FAULT_*``), so
they work in any ``wf`` process a test starts.
"""
