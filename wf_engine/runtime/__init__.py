"""The imperative shell: runs, owners, processes and the run store.

``runner`` is the one scheduler thread that owns a run's state and log, and ``commit`` the one
path by which anything is folded, appended, fsynced and announced; ``processes`` starts,
signals, drains and reaps attempts; ``procinfo`` and ``oscaps`` tell processes apart on Linux
and macOS; ``leftovers`` proves a dead runner's attempts dead before anything runs again;
``takeover`` creates or resumes a run, ``cancellation`` cancels one; ``ownership`` is the
one-owner lock, ``store`` the layout of the run store, ``runview`` reading a run without owning
it, ``stopsignals`` SIGINT/SIGTERM as stop requests, ``workflow_file`` reading a workflow file.

May import ``wf_engine.core``, ``wf_engine.log``, ``wf_engine.plugins`` and
``wf_engine.errors``; never the CLI (and so never ``click``).
"""
