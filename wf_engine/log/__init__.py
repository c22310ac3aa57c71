"""The event log on disk: its line format, its strict reader, its write-ahead writer.

``eventlog`` encodes and checksums records, reads commit batches back (telling a torn tail from
corruption) and appends batches with one write and one fsync; ``durable`` holds the system
calls durability rests on (the seam fault injection uses); ``storefiles`` opens run-store files
without blocking or following links. The format is documented in ``docs/log-format.md``.

May import ``wf_engine.core`` and ``wf_engine.errors``; never the runtime, plugins or the CLI.
"""
