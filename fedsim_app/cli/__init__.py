"""The ``fedsim`` command: one module per subcommand.

Every module ``fedsim_app/cli/<name>.py`` (not starting with ``_``) that defines
``register(subparsers)`` becomes a subcommand; ``register`` adds its parser and sets
``func`` to a callable ``(args) -> int``. Modules import heavy libraries inside
``func`` so that ``fedsim --help`` stays fast.

Exit codes: 0 success, 1 the task ran and found problems (e.g. ``validate``),
2 bad usage or input that could not be used, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from fedsim_app import __version__
from fedsim_app.errors import FedSimError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedsim",
        description="FedSim: federated simulation of labelled cardiac CT (headless engine).",
    )
    parser.add_argument("--version", action="version", version=f"fedsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(args.func(args) or 0)
    except FedSimError as exc:
        print(f"fedsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fedsim {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(command: str):
    """A warning reaches a user of the command as one ``note:`` line, without the
    Python source line and category that ``warnings`` prints by default."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"fedsim {command}: note: {text}", file=file or sys.stderr)

    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
