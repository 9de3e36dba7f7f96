"""``fedsim federate --runtime flower``: a local SuperLink and one SuperNode per site.

Everything runs on the loopback interface, each process in its own process group so that
stopping takes all of its children with it; nothing is left running afterwards. Telemetry
is off (``FLWR_TELEMETRY_ENABLED=0``) and Flower's home (connection config, installed app)
lives in ``RUN/flower/`` rather than in the user's home. This module starts Flower's
commands; it does not import ``flwr``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fedsim_app.errors import FedSimError
from fedsim_app.federated.flower_node import POLL_S as NODE_POLL_S

CONNECTION = "fedsim-local"
APP_TOML = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "fedsim-federation"
version = "1.0.0"
description = "FedSim federated simulation (FedSGD on shape and material)"
license = "Apache-2.0"

[tool.flwr.app]
publisher = "fedsim"

[tool.flwr.app.components]
serverapp = "fedsim_app.federated.flower_app:server_app"
clientapp = "fedsim_app.federated.flower_app:client_app"

[tool.flwr.app.config]
run-dir = ""
until-round = 0
straggler-s = 60.0
secagg-clip = 0.0
"""


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _processes_using(ports) -> list[int]:
    """Ids of processes given ``--runtime-api-address 127.0.0.1:PORT`` for one of ``ports``."""
    wanted = {f"127.0.0.1:{p}".encode() for p in ports if p}
    found = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmd.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a == b"--runtime-api-address" and b in wanted
               for a, b in zip(argv, argv[1:], strict=False)):
            found.append(int(cmd.parent.name))
    return [p for p in found if p != os.getpid()]


def _tool(name: str) -> str:
    # Flower's commands sit beside this interpreter in a virtual environment
    path = Path(sys.executable).with_name(name)
    if path.is_file():
        return str(path)
    found = shutil.which(name)
    if not found:
        raise FedSimError(f"{name}: Flower is not installed — install FedSim with the "
                          "[flower] extra (pip install 'fedsim[flower]'), or use "
                          "--runtime inprocess")
    return found


def _toml_str(value: str) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


class LocalFlower:
    """A SuperLink and one SuperNode per site on 127.0.0.1, stopped on exit."""

    def __init__(self, fed, run_dir: str | Path, *, node_poll_s: float = NODE_POLL_S):
        self.fed = fed
        self.run_dir = Path(run_dir).resolve()
        self.root = self.run_dir / "flower"
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}  # site -> its SuperNode's runtime API port
        self.link = 0
        self.node_poll_s = node_poll_s
        # Flower starts its helpers (flower-superexec, flwr-serverapp, flwr-clientapp) by
        # name: the interpreter's bin folder goes first on PATH
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.env = {**os.environ, "PATH": path, "FLWR_HOME": str(self.root / "home"),
                    "FLWR_TELEMETRY_ENABLED": "0", "PYTHONUNBUFFERED": "1"}

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def __enter__(self) -> LocalFlower:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(exist_ok=True)
        app = self.root / "app"
        app.mkdir(exist_ok=True)
        (app / "pyproject.toml").write_text(APP_TOML)
        n = len(self.fed.sites)
        link, *node_ports = _free_ports(1 + n)
        self.link = link
        # one HTTP runtime API on the SuperLink serves the SuperNodes and `flwr run`
        (self.root / "home" / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "127.0.0.1:{link}"\ninsecure = true\n')
        try:
            self._start("superlink", [
                _tool("flower-superlink"), "--insecure", "--host", "127.0.0.1",
                "--port", str(link), "--disable-runtime-dependency-installation"])
            # no --database: Flower's in-memory state (the run's state is FedSim's own
            # server.pt; an SQLite file reported "database is locked" under load)
            self._wait_for_port(link, "superlink")
            for key, port in zip(self.fed.sites, node_ports, strict=True):
                self.start_node(key, link, port)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_port(self, port: int, name: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise FedSimError(f"the {name} stopped at start (exit "
                                  f"{self.procs[name].returncode}); see "
                                  f"{self.root / (name + '.log')}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.25)
        raise FedSimError(f"the {name} did not open 127.0.0.1:{port} within {timeout_s:.0f} s; "
                          f"see {self.root / (name + '.log')}")

    def start_node(self, key: str, link: int, port: int) -> subprocess.Popen:
        """One hospital's SuperNode: it reads only ``data[key]``; its state stays in
        ``RUN/flower/sites/<key>``.

        The SuperNode runs with ``--isolation process`` and FedSim's long-lived worker
        (:mod:`~fedsim_app.federated.flower_worker`) runs its tasks, so the site's data and
        networks stay loaded between rounds instead of a fresh ``flwr-clientapp`` process
        per message. The SuperNode is Flower's own, started through
        :mod:`~fedsim_app.federated.flower_node` so that it asks for the next message every
        ``node_poll_s`` instead of every 3 s.
        """
        node_config = " ".join([
            f"site={_toml_str(key)}", f"data-dir={_toml_str(self.fed.data[key])}",
            f"state-dir={_toml_str(self.root / 'sites' / key)}",
            f"labels={int(self.fed.labels[key])}"])
        # Flower's own SuperNode, its 3 s idle wait capped (flower_node.POLL_S)
        _tool("flower-supernode")  # Flower is installed (a clear error if not)
        node = self._start(f"supernode-{key}", [
            sys.executable, "-m", "fedsim_app.federated.flower_node", "--poll-s",
            str(self.node_poll_s), "--", "--insecure", "--superlink", f"127.0.0.1:{link}",
            "--host", "127.0.0.1", "--port", str(port), "--isolation", "process",
            "--node-config", node_config])
        self._start(f"worker-{key}", [
            sys.executable, "-m", "fedsim_app.federated.flower_worker",
            "--runtime-api-address", f"127.0.0.1:{port}", "--parent-pid", str(node.pid)])
        self.ports[key] = port
        return node

    def stop_node(self, key: str) -> None:
        """Kill site ``key``'s SuperNode and worker at once (a hospital going offline)."""
        for name in (f"supernode-{key}", f"worker-{key}"):
            proc = self.procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def run(self, *, until: int = 0, progress=None, poll_s: float = 0.5,
            straggler_s: float = 60.0, secagg_clip: float = 0.0) -> int:
        """``flwr run`` the app against the local SuperLink; returns its exit status.

        ``straggler_s``: how long a round waits for the other sites once the federation's
        minimum answered. ``secagg_clip`` > 0: shared rounds under SecAgg+, each gradient
        value clipped to ±``secagg_clip`` (:mod:`~fedsim_app.federated.flower_secagg`).
        """
        cfg = (f"run-dir={_toml_str(self.run_dir)} until-round={int(until)} "
               f"straggler-s={float(straggler_s)} secagg-clip={float(secagg_clip)}")
        proc = self._start("flwr-run", [_tool("flwr"), "run", str(self.root / "app"),
                                        CONNECTION, "--stream", "--run-config", cfg])
        log = self.run_dir / "rounds.jsonl"
        seen = len(log.read_text().splitlines()) if log.is_file() else 0
        while proc.poll() is None:
            time.sleep(poll_s)
            seen = self._report(log, seen, progress)
            link = self.procs["superlink"]
            if link.poll() is not None:
                raise FedSimError(f"the SuperLink stopped (exit {link.returncode}); see "
                                  f"{self.root / 'superlink.log'}")
        self._report(log, seen, progress)
        return proc.returncode

    @staticmethod
    def _report(log: Path, seen: int, progress) -> int:
        if not log.is_file():
            return seen
        lines = log.read_text().splitlines()
        for line in lines[seen:]:
            if progress is not None and line.strip():
                progress(json.loads(line))
        return len(lines)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every process group started here (TERM, then KILL)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        # Flower's app processes talk to this run's SuperLink and SuperNodes by port; one
        # that outlived its process group (seen once, after the SuperLink had crashed) is
        # found by its address and ended too
        for pid in _processes_using([self.link, *self.ports.values()]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def __exit__(self, *exc) -> None:
        self.stop()


def run_flower(fed, run_dir: str | Path, *, resume: bool = False, until: int = 0,
               progress=None, secagg_clip: float = 0.0) -> int:
    """Run (or resume) the federation ``fed`` on local Flower; 0 when it finished.
    ``secagg_clip`` > 0 turns SecAgg+ on (see :meth:`LocalFlower.run`)."""
    from fedsim_app.federated.server import CHECKPOINT, load_server_checkpoint

    run_dir = Path(run_dir)
    if not resume:
        fed.save(run_dir)
    with LocalFlower(fed, run_dir) as flower:
        status = flower.run(until=until, progress=progress, secagg_clip=secagg_clip)
    if status != 0:
        raise FedSimError(f"flwr run exited with status {status}; see "
                          f"{run_dir / 'flower' / 'flwr-run.log'} and the SuperLink's log")
    state = load_server_checkpoint(run_dir / CHECKPOINT)
    return 0 if state["round"] >= sum(state["plan"]["phase_rounds"]) or until else 1
