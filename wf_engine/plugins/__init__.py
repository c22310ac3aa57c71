"""Extension points: the pluggy hook specifications and the typed plugin manager.

``hookspecs`` documents every hook and when it fires; ``manager`` loads plugins (entry points,
``$WF_PLUGINS``, ``-p``), guards each implementation so a failing plugin never changes a run,
and offers one typed method per hook, so engine code never calls the untyped ``pm.hook``;
``discovery`` finds the installed plugins and says whether a command must load plugins before
parsing its arguments, without importing pluggy (its cache is described in docs/hooks.md).

May import ``wf_engine.errors`` only: plugins see records as plain dicts, not engine types.
"""
