"""Flower 1.42's SuperNode with a shorter wait between its asks for messages.

Flower's SuperNode (``flower-supernode``) asks the SuperLink for a message, and when none
is waiting sleeps 3 s before it asks again; once its ClientApp runs, it looks for the
reply every 0.5 s. Both waits are literals in Flower 1.42's
``flwr.supernode.start_client_internal`` with no option to change them. In a FedSGD
round the next message is pushed just after the node's last ask, so every round waited
~3 s for the node to look again: on the ``cpu`` preset that is seven times the round's own
work (``docs/benchmarks.md``, issue 12).

This module runs the very same SuperNode (Flower's ``flower_supernode`` entry point, same
arguments) after replacing the ``time`` that module sleeps with by one whose sleeps are
capped at ``--poll-s``. The cap touches only those two waits (the module uses ``time`` for
nothing else in 1.42); each ask is one small request to the SuperLink, so a short poll
costs the SuperLink a few requests a second per node. On any other Flower version the
SuperNode runs unchanged, with a warning. :mod:`~fedsim_app.federated.flower_launch` uses
it for the local SuperNodes; a hospital's machine may run it the same way::

    python -m fedsim_app.federated.flower_node --poll-s 0.1 -- --superlink HOST:9092 ...
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import types

#: the Flower release whose SuperNode loop this was checked against
FLOWER_VERSION = "1.42."
#: default cap on the SuperNode's waits (its own: 3 s idle, 0.5 s for a reply)
POLL_S = 0.1

log = logging.getLogger("fedsim.flower_node")


def cap_supernode_waits(poll_s: float) -> bool:
    """Cap the sleeps of Flower's SuperNode loop at ``poll_s`` seconds.

    Returns False (and changes nothing) on a Flower release other than 1.42.
    """
    import flwr
    from flwr.supernode import start_client_internal as loop

    if not flwr.__version__.startswith(FLOWER_VERSION) or not hasattr(loop, "time"):
        log.warning("Flower %s is not %sx: the SuperNode keeps its own waits (3 s idle)",
                    flwr.__version__, FLOWER_VERSION)
        return False

    def sleep(seconds: float) -> None:
        time.sleep(min(float(seconds), poll_s))

    loop.time = types.SimpleNamespace(sleep=sleep)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 usage="%(prog)s [--poll-s S] -- FLOWER_SUPERNODE_ARGS...")
    ap.add_argument("--poll-s", type=float, default=POLL_S,
                    help=f"longest wait between the SuperNode's asks (default {POLL_S})")
    ours, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else ([], argv)
    args = ap.parse_args(ours)
    if not args.poll_s > 0:
        ap.error(f"--poll-s must be > 0, got {args.poll_s}")
    # no logging setup here: Flower configures its own (a root handler would repeat
    # every Flower line and log each of the node's polls through httpx); the warning of
    # cap_supernode_waits reaches stderr through logging's last-resort handler
    cap_supernode_waits(args.poll_s)
    from flwr.supernode.cli import flower_supernode

    sys.argv = ["flower-supernode", *rest]  # Flower's entry point parses sys.argv
    flower_supernode()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
