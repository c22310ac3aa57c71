"""``python -m wf_engine`` is the ``wf`` command."""

from wf_engine.cli import main

if __name__ == "__main__":
    main()
