"""The command line: the typer app (:mod:`deleverage.cli.app`) and one module per command group.

``deleverage`` on the shell runs :func:`main`; ``python -m deleverage`` does the same.
"""

from deleverage.cli.app import app, main

__all__ = ["app", "main"]
