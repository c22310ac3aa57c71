"""The functional core: what a workflow is, what a run's state is, and what happens next.

``model``, ``states``, ``validation`` and ``graph`` define workflows; ``records`` the shape of
each log record; ``fold`` builds state from records; ``decide`` says what the engine does next;
``verify`` checks a log's decisions against ``decide``; ``clock`` spells times as integers.

Pure: no files, no processes, no threads. Modules here import only each other and
``wf_engine.errors`` (checked by the import contract in ``pyproject.toml``), so every rule of
the engine can be tested without touching a disk, and replay is deterministic.
"""
