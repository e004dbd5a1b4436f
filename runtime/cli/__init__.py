"""The `baton` command: a runtime, its actors, and the tools around them.

`app` is the typer application and `main` the console script. Each group of
subcommands lives in its own module (the runtime, an agent, runs, decisions,
workflows, the journal, keys, the demo); they share the connection options,
the consoles and the tables that read both in a terminal and in a pipe.
"""

from runtime.cli._app import app as app
from runtime.cli._app import main as main

__all__ = ["app", "main"]
