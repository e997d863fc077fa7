"""A real Flower federation on one machine: one SuperLink and N SuperNodes on localhost.

:class:`LocalFederation` starts Flower's Deployment Engine as separate processes, with TLS and
SuperNode authentication on, in a private ``FLWR_HOME`` under its work dir, and stops all of it
on exit. It is meant for ``fedrisk demo`` and the federation tests.

Processes and ports (Flower 1.41, read from ``flwr/superlink/cli``, ``flwr/supernode/cli``)
----------------------------------------------------------------------------------------------
- ``flower-superlink`` serves the Fleet API (SuperNodes), the Control API (``flwr`` CLI) and
  the Runtime/ServerAppIo API (ServerApp processes) over HTTPS on **one** port, ``--port``
  (default 8000). The older separate gRPC ports (9091-9093) are gone: ``--fleet-api-address``
  and ``--control-api-address`` are deprecated no-ops, the gRPC servers start only under
  internal ``FLWR_INTERNAL_GRPC_*`` variables, a health port only with ``--health-server-address``.
- ``flower-supernode`` listens on its own ``--port`` (default 9094): its Runtime API, which the
  ClientApp processes of that node talk to. It is plain HTTP on 127.0.0.1 unless the node gets
  ``--ssl-certfile/--ssl-keyfile/--ssl-ca-certfile``; the SuperNode itself dials the SuperLink.
- Both start a ``flower-superexec`` child that launches ``flwr-serverapp`` (one per run, at
  the SuperLink) and ``flwr-clientapp`` (one per message, at each SuperNode). All three are
  looked up on ``PATH``: the environment must have this interpreter's bin dir first.
- The SuperLink's SuperExec runs in a session of its own (``start_new_session``), so it is not
  in the SuperLink's process group; it exits when its ``--parent-pid`` disappears, but a zombie
  parent still counts as alive. Hence every child here is reaped, and :meth:`close` sweeps all
  processes that carry this federation's marker variable (Linux ``/proc``).

How an app is packaged and imported
-----------------------------------
- ``flwr run APP_DIR NAME`` first validates ``[tool.flwr.app.components]`` in the CLI's own
  Python: ``importlib.util.find_spec`` with APP_DIR put first on ``sys.path``. A component must
  therefore be importable by the interpreter that runs ``flwr``.
- It then builds the FAB in memory (``flwr.cli.build.build_fab_from_disk``): all files under
  APP_DIR (symlinks skipped, at most 10 levels deep, ``.gitignore`` applied) that match
  ``**/*.py``, ``*.toml``, ``*.md``, ``*.yaml``, ``*.yml``, ``*.json``, ``*.jsonl``, ``/LICENSE``,
  minus ``__pycache__/``, ``.flwr/``, ``build/``, ``lib/``, virtualenvs and **test files
  (``test_*.py``, ``*_test.py``)**; ``pyproject.toml`` is rewritten (comments lost,
  ``[tool.flwr.federations]`` dropped); the zip must stay under 10 MB. Its SHA-256 names it.
- For every run, ``flwr-serverapp`` (and for every message, ``flwr-clientapp``) fetches the FAB,
  unzips it to ``$FLWR_HOME/apps/<publisher>.<name>.<version>.<hash8>/``, skips dependency
  installation (``--disable-runtime-dependency-installation``), inserts that dir at
  **``sys.path[0]``** and imports the component with ``importlib.import_module``. These are
  console scripts of this interpreter, so installed packages (``fedrisk``, editable or not) are
  importable; the FAB dir comes first and would shadow them, so an app dir must never contain
  a top-level ``fedrisk/`` folder (or any module named like an installed one).
- Verified: an app dir holding only a ``pyproject.toml`` whose components are
  ``"fedrisk.<pkg>.<module>:app"`` works; its FAB carries just that ``pyproject.toml`` and the
  code comes from the installed ``fedrisk`` of each host. The FAB hash then does not pin the
  code: every host must run the same ``fedrisk`` version.
- Every message starts a fresh ClientApp process that imports the component module anew:
  module import time is paid per message and per node.

Other facts this module relies on
---------------------------------
- ``flwr run --stream`` exits 0 even when the ServerApp fails; the outcome is the run status of
  ``flwr ls NAME --run-id ID --format json`` (``finished:completed``, ``finished:failed``, ...),
  which :meth:`LocalFederation.run` reads into :class:`RunResult`.
- A SuperNode whose public key was never registered is refused at once: it logs
  ``Exit Code: 305`` ("Failed to activate SuperNode", ``[code: 2004]``) and exits with OS
  status **1** — Flower's exit codes are logged, the process status is only 0 or 1
  (``flwr.supercore.exit.flwr_exit``). The SuperLink logs ``[ApiError:2004] ... No SuperNode
  found with the given public key`` and answers HTTP 412.
- The ``--node-config`` and ``--run-config`` strings are TOML values (``k="text" n=3``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from fedrisk.deploy.pki import NodeKey, TlsFiles, make_node_key, make_tls

ConfigValue = str | int | float
"""A value of ``--node-config`` / ``--run-config``: bool, int, float or str (as in TOML)."""

APP_DIR = Path(__file__).resolve().parent / "app"
"""fedrisk's Flower App (its pyproject.toml only: the components are installed modules)."""
HOST = "127.0.0.1"
MARKER_VAR = "FEDRISK_LOCAL_FEDERATION"
"""Environment variable set in every process of a federation, to find them all at the end."""

_BOUND = "Uvicorn running on"  # uvicorn prints it once its socket is bound, not before
_CLASH = "address already in use"
_PORT_ATTEMPTS = 3  # a port found free may be taken before the process binds it
_POLL = 0.2
_GRACE = 10.0  # SIGTERM to SIGKILL: SuperNodes deactivate themselves at the SuperLink first
_RUN_ID = re.compile(r"Successfully started run (\d+)")
_EXIT_CODE = re.compile(r"Exit Code: (\d+)")
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class FederationError(RuntimeError):
    """The federation could not be started, reached or stopped as expected."""


class RunTimeoutError(FederationError):
    """A ``flwr run`` took longer than its timeout; the run was stopped."""


class RunFailedError(FederationError):
    """A run ended in another state than ``finished:completed``."""


@dataclass(frozen=True)
class RunResult:
    """The outcome of one ``flwr run --stream``."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    run_id: int | None
    status: str | None  # e.g. "finished:completed", "finished:failed"
    status_details: str = ""

    @property
    def ok(self) -> bool:
        """The CLI succeeded and the run completed."""
        return self.returncode == 0 and self.status == "finished:completed"

    def check(self) -> RunResult:
        """Return self if :attr:`ok`, else raise :class:`RunFailedError` with the evidence."""
        if not self.ok:
            raise RunFailedError(
                f"run {self.run_id}: exit code {self.returncode}, status {self.status} "
                f"{self.status_details}\n--- stdout (tail)\n{_tail_text(self.stdout)}"
                f"\n--- stderr (tail)\n{_tail_text(self.stderr)}"
            )
        return self


@dataclass
class _Node:
    """One SuperNode: its key, config, port, process and SuperLink-assigned node ID."""

    index: int
    key: NodeKey
    config: Mapping[str, ConfigValue]
    log: Path
    registered: bool
    node_id: int | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # where the current attempt's output starts in ``log``


@dataclass
class _Ports:
    """Ports handed out by this federation, so that none is used twice."""

    used: set[int] = field(default_factory=set)

    def take(self) -> int:
        while True:
            port = _free_port()
            if port not in self.used:
                self.used.add(port)
                return port


class LocalFederation:
    """A SuperLink and SuperNodes on localhost, with TLS and SuperNode authentication.

    Use it as a context manager::

        with LocalFederation([{"site-home": "/data/h1"}, {"site-home": "/data/h2"}]) as fed:
            fed.run(Path("apps/echo"), {"out": "/tmp/out.json"}).check()

    Everything lives in ``workdir`` (a fresh temp dir by default, kept afterwards):
    ``pki/`` (CA, TLS, node keys), ``flwr-home/`` (``FLWR_HOME``: ``config.toml``, unpacked
    apps), ``logs/`` (``superlink.log``, ``supernode-<i>.log``, ``run-<k>.stdout/.stderr``).
    """

    def __init__(
        self,
        node_configs: Sequence[Mapping[str, ConfigValue]],
        *,
        workdir: Path | None = None,
        name: str = "fedrisk-local",
        startup_timeout: float = 60.0,
        database: bool = True,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"federation name {name!r}: letters, digits, '_', '-'")
        for config in node_configs:
            config_arg(config)  # fail before starting anything
        self.name = name
        self.workdir = (workdir or Path(tempfile.mkdtemp(prefix="fedrisk-federation-"))).resolve()
        self.startup_timeout = startup_timeout
        self.flwr_home = self.workdir / "flwr-home"
        self.logs = self.workdir / "logs"
        # The SuperLink's state (registered keys, runs, every message it relays) in SQLite, as a
        # deployment keeps it: it survives a restart, and tests can read what the SuperLink got.
        self.database = self.workdir / "superlink.db" if database else None
        self.marker = uuid.uuid4().hex
        self.bin_dir = Path(sys.executable).parent  # not resolved: keep the venv's bin dir
        self._initial_configs = list(node_configs)
        self._nodes: list[_Node] = []
        self._ports = _Ports()
        self._superlink: subprocess.Popen[bytes] | None = None
        self._superlink_port = 0
        self._tls: TlsFiles | None = None
        self._runs = 0
        self._env = self._make_env()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalFederation:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the SuperLink, register the nodes' keys, start the SuperNodes; wait for all."""
        try:
            self._prepare_dirs()
            self._tls = make_tls(self.workdir / "pki" / "tls")
            self._start_superlink()
            self._write_flwr_config()
            nodes = [self._new_node(config, register=True) for config in self._initial_configs]
            self._start_nodes(nodes, wait=True)
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise

    def close(self) -> None:
        """Stop every process this federation started: SIGTERM, wait, then SIGKILL."""
        nodes = [node.proc for node in self._nodes if node.proc is not None]
        _terminate(nodes, _GRACE)  # nodes first, while the SuperLink can still hear them
        if self._superlink is not None:
            _terminate([self._superlink], _GRACE)
        _sweep(self.pids, grace=3.0)

    # -- nodes -------------------------------------------------------------------------------

    def add_node(
        self, node_config: Mapping[str, ConfigValue], *, register: bool = True, wait: bool = True
    ) -> int:
        """Start one more SuperNode and return its index.

        ``register=False`` starts it with a key the SuperLink has never seen: it is refused,
        logs Flower exit code 305 and exits with status 1. ``wait`` waits until the SuperLink
        lists a registered node online.
        """
        config_arg(node_config)
        node = self._new_node(node_config, register=register)
        self._start_nodes([node], wait=wait and register)
        return node.index

    def kill_node(self, index: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill SuperNode ``index`` and its process group (SuperExec, ClientApps): a crash."""
        proc = self._node(index).proc
        if proc is None:
            return
        # Each node leads its own session and process group; the group outlives a leader
        # that already exited, as long as a member (its SuperExec) is alive.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait()

    def wait_node(self, index: int, timeout: float) -> int:
        """Wait for SuperNode ``index`` to exit and return its OS exit status (0 or 1)."""
        proc = self._node(index).proc
        if proc is None:
            raise FederationError(f"SuperNode {index} was never started")
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise FederationError(
                f"SuperNode {index} still running after {timeout:.0f} s"
                + _log_tail(self._node(index).log)
            ) from None

    def flower_exit_code(self, index: int) -> int | None:
        """The last Flower exit code SuperNode ``index`` logged (e.g. 305), if any.

        Its ClientApps log into the same file, so after runs this may be theirs.
        """
        codes = _EXIT_CODE.findall(_read(self._node(index).log))
        return int(codes[-1]) if codes else None

    def node_log(self, index: int) -> Path:
        """The log file of SuperNode ``index`` (its stdout and stderr)."""
        return self._node(index).log

    def node_id(self, index: int) -> int | None:
        """The node ID the SuperLink gave SuperNode ``index`` at registration."""
        return self._node(index).node_id

    def node_port(self, index: int) -> int:
        """The port of SuperNode ``index``'s Runtime API (its ClientApps connect there)."""
        return self._node(index).port

    def node_pid(self, index: int) -> int | None:
        """The process ID of SuperNode ``index``."""
        proc = self._node(index).proc
        return None if proc is None else proc.pid

    @property
    def node_count(self) -> int:
        """How many SuperNodes were started (alive or not)."""
        return len(self._nodes)

    def node_statuses(self) -> dict[int, str]:
        """Node ID -> status ("online", "offline", "registered", ...), as the SuperLink sees it."""
        out = self._flwr_json("supernode", "ls", self.name, "--format", "json")
        return {int(node["node-id"]): str(node["status"]) for node in out.get("nodes", [])}

    # -- SuperLink ---------------------------------------------------------------------------

    @property
    def superlink_port(self) -> int:
        """The SuperLink's one port: Fleet, Control and ServerAppIo APIs (HTTPS)."""
        return self._superlink_port

    @property
    def address(self) -> str:
        """``host:port`` of the SuperLink, for SuperNodes and the ``flwr`` CLI."""
        return f"{HOST}:{self._superlink_port}"

    @property
    def superlink_log(self) -> Path:
        """The SuperLink's log (its SuperExec and ServerApp processes write there too)."""
        return self.logs / "superlink.log"

    @property
    def superlink_pid(self) -> int | None:
        """The process ID of the SuperLink."""
        return None if self._superlink is None else self._superlink.pid

    @property
    def tls(self) -> TlsFiles:
        """The CA and SuperLink certificate files."""
        if self._tls is None:
            raise FederationError("the federation has not been started")
        return self._tls

    # -- runs --------------------------------------------------------------------------------

    def run(
        self,
        app_dir: Path,
        run_config: Mapping[str, ConfigValue] | None = None,
        timeout: float = 300.0,
    ) -> RunResult:
        """Run the Flower app in ``app_dir`` (``flwr run --stream``) and wait for its end.

        Raises :class:`RunTimeoutError` after ``timeout`` seconds, having stopped the run.
        """
        argv = [self._bin("flwr"), "run", str(Path(app_dir).resolve()), self.name, "--stream"]
        if run_config:
            argv += ["--run-config", config_arg(run_config)]
        self._runs += 1
        out = self.logs / f"run-{self._runs}.stdout"
        err = self.logs / f"run-{self._runs}.stderr"
        started = time.monotonic()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = self._popen(argv, stdout, stderr)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._abort_run(proc, out, timeout) from None
        seconds = time.monotonic() - started
        stdout_text = out.read_text(errors="replace")
        run_id = _run_id(stdout_text)
        status, details = self._final_status(run_id) if run_id is not None else (None, "")
        return RunResult(
            returncode=returncode,
            stdout=stdout_text,
            stderr=err.read_text(errors="replace"),
            seconds=seconds,
            run_id=run_id,
            status=status,
            status_details=details,
        )

    def stop_run(self, run_id: int) -> None:
        """Stop a running run at the SuperLink (``flwr stop``): its ServerApp process ends."""
        done = self._flwr("stop", str(run_id), self.name)
        if done.returncode != 0:
            raise FederationError(f"flwr stop {run_id} failed:\n{done.stdout}{done.stderr}")

    def pids(self) -> set[int]:
        """Live processes of this federation, found by its marker (SuperExecs, apps, CLIs)."""
        return _marked_pids(f"{MARKER_VAR}={self.marker}".encode())

    # -- internals: setup --------------------------------------------------------------------

    def _make_env(self) -> dict[str, str]:
        # Inherited FLWR_* variables (a user's FLWR_HOME, internal switches that open more
        # ports) must not leak into a private federation.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLWR_")}
        env.update(
            FLWR_HOME=str(self.flwr_home),
            FLWR_TELEMETRY_ENABLED="0",
            FLWR_DISABLE_UPDATE_CHECK="1",
            # SuperExec finds flwr-serverapp / flwr-clientapp on PATH.
            PATH=os.pathsep.join([str(self.bin_dir), env.get("PATH", "")]),
            PYTHONUNBUFFERED="1",  # readiness is read from the logs: no lines held back
        )
        env[MARKER_VAR] = self.marker
        return env

    def _prepare_dirs(self) -> None:
        for script in ("flower-superlink", "flower-supernode", "flower-superexec", "flwr"):
            if not (self.bin_dir / script).exists():
                raise FederationError(f"{script} not found in {self.bin_dir} (is flwr installed?)")
        for directory in (self.workdir, self.flwr_home, self.logs):
            directory.mkdir(parents=True, exist_ok=True)
        self.flwr_home.chmod(0o700)

    def _start_superlink(self) -> None:
        """The SuperLink: coordinates runs, relays messages, admits registered SuperNodes."""
        tls = self.tls
        for _ in range(_PORT_ATTEMPTS):
            self._superlink_port = self._ports.take()
            argv = [
                self._bin("flower-superlink"),
                "--ssl-ca-certfile", str(tls.ca_cert),
                "--ssl-certfile", str(tls.server_cert),
                "--ssl-keyfile", str(tls.server_key),
                "--enable-supernode-auth",
                # Default is to `uv sync` each app's dependencies: needs a network; ours are
                # installed already.
                "--disable-runtime-dependency-installation",
                "--host", HOST,
                "--port", str(self._superlink_port),
            ]  # fmt: skip
            if self.database is not None:
                argv += ["--database", str(self.database)]
            offset = _size(self.superlink_log)
            self._superlink = self._spawn(argv, self.superlink_log)
            if self._await_bound(self._superlink, self.superlink_log, offset, "SuperLink"):
                return
        raise FederationError(f"SuperLink: no free port in {_PORT_ATTEMPTS} attempts")

    def _write_flwr_config(self) -> None:
        # Only our connection, made the default: never the `local` entry, whose magic address
        # makes the CLI start a managed simulation SuperLink. Strings are JSON-quoted, which
        # TOML reads as basic strings.
        text = (
            f"[superlink]\ndefault = {json.dumps(self.name)}\n\n"
            f"[superlink.{self.name}]\n"
            f"address = {json.dumps(self.address)}\n"
            f"root-certificates = {json.dumps(str(self.tls.ca_cert))}\n"
        )
        (self.flwr_home / "config.toml").write_text(text, encoding="utf-8")

    def _new_node(self, config: Mapping[str, ConfigValue], *, register: bool) -> _Node:
        index = len(self._nodes)
        key = make_node_key(self.workdir / "pki" / "nodes", f"supernode-{index}")
        node = _Node(index, key, dict(config), self.logs / f"supernode-{index}.log", register)
        self._nodes.append(node)
        return node

    def _start_nodes(self, nodes: list[_Node], *, wait: bool) -> None:
        self._register([node for node in nodes if node.registered])
        pending = nodes
        for _ in range(_PORT_ATTEMPTS):
            for node in pending:
                self._spawn_node(node)
            pending = [n for n in pending if not self._await_bound_node(n)]
            if not pending:
                break
        if pending:
            raise FederationError(f"SuperNodes: no free port in {_PORT_ATTEMPTS} attempts")
        if wait:
            self._await_online(nodes)

    def _register(self, nodes: list[_Node]) -> None:
        """Register the nodes' public keys at the SuperLink (``flwr supernode register``)."""
        register = [self._bin("flwr"), "supernode", "register"]
        procs = [
            self._popen(
                [*register, str(node.key.public_key), self.name, "--format", "json"],
                subprocess.PIPE,
                subprocess.PIPE,
            )
            for node in nodes
        ]
        for node, proc in zip(nodes, procs, strict=True):  # in parallel: ~1 s of CLI each
            stdout, stderr = proc.communicate(timeout=self.startup_timeout)
            answer = _json_object(stdout.decode(errors="replace"))
            if proc.returncode != 0 or "node-id" not in answer:
                raise FederationError(
                    f"registering {node.key.public_key} failed (exit {proc.returncode}):\n"
                    f"{stdout.decode(errors='replace')}{stderr.decode(errors='replace')}"
                )
            node.node_id = int(answer["node-id"])

    def _spawn_node(self, node: _Node) -> None:
        """A SuperNode: runs this site's ClientApps on the messages the SuperLink relays."""
        node.port = self._ports.take()
        argv = [
            self._bin("flower-supernode"),
            "--superlink", self.address,
            "--root-certificates", str(self.tls.ca_cert),
            "--auth-supernode-private-key", str(node.key.private_key),
            "--port", str(node.port),
        ]  # fmt: skip
        if node.config:
            argv += ["--node-config", config_arg(node.config)]
        node.log_offset = _size(node.log)
        node.proc = self._spawn(argv, node.log)

    # -- internals: waiting ------------------------------------------------------------------

    def _await_bound_node(self, node: _Node) -> bool:
        assert node.proc is not None
        return self._await_bound(node.proc, node.log, node.log_offset, _label(node))

    def _await_bound(
        self, proc: subprocess.Popen[bytes], log: Path, offset: int, what: str
    ) -> bool:
        """Wait until ``proc`` has bound its port: True; False if the port was taken."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            text = _read(log, offset)
            if _BOUND in text:
                return True
            if proc.poll() is not None:
                if _CLASH in text.lower():
                    return False
                raise FederationError(f"{what} exited with code {proc.returncode}" + _tail(text))
            if time.monotonic() > deadline:
                raise FederationError(
                    f"{what} not listening after {self.startup_timeout:.0f} s" + _tail(text)
                )
            time.sleep(_POLL)

    def _await_online(self, nodes: list[_Node]) -> None:
        """Wait until every node is online at the SuperLink; fail fast if one exits."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            for node in nodes:
                assert node.proc is not None
                if node.proc.poll() is not None:
                    raise FederationError(
                        f"{_label(node)} exited with code {node.proc.returncode}"
                        + _log_tail(node.log)
                    )
            # A node logs its ID right after the SuperLink accepted its ActivateNode call,
            # which is what makes it "online" there: cheaper than a `flwr supernode ls`
            # (~1 s of CPU per call), and it names the very process we started.
            if all(f"SuperNode ID: {n.node_id}" in _read(n.log, n.log_offset) for n in nodes):
                return
            if time.monotonic() > deadline:
                raise FederationError(
                    f"SuperNodes not online after {self.startup_timeout:.0f} s"
                    + "".join(_log_tail(n.log) for n in nodes)
                    + _log_tail(self.superlink_log)
                )
            time.sleep(_POLL)

    def _final_status(self, run_id: int) -> tuple[str | None, str]:
        """The run's status once finished (``flwr ls --run-id``), and its details."""
        deadline = time.monotonic() + 30.0
        status: str | None = None
        details = ""
        while time.monotonic() < deadline:
            runs = self._flwr_json("ls", self.name, "--run-id", str(run_id), "--format", "json")
            for run in runs.get("runs", []):
                status, details = str(run["status"]), str(run.get("status-details", ""))
            if status is not None and status.startswith("finished"):
                break
            time.sleep(0.5)
        return status, details

    def _abort_run(
        self, proc: subprocess.Popen[bytes], out: Path, timeout: float
    ) -> RunTimeoutError:
        """Kill the CLI, stop the run at the SuperLink, and describe what happened."""
        _terminate([proc], 5.0)
        text = _read(out)
        run_id = _run_id(text)
        stopped = "no run ID seen"
        if run_id is not None:
            stop = self._flwr("stop", str(run_id), self.name)
            stopped = "stopped" if stop.returncode == 0 else f"`flwr stop` failed: {stop.stdout}"
        return RunTimeoutError(
            f"run {run_id} did not finish within {timeout:.0f} s ({stopped})" + _tail(text)
        )

    # -- internals: processes ----------------------------------------------------------------

    def _bin(self, script: str) -> str:
        return str(self.bin_dir / script)

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start a long-running process writing stdout and stderr to ``log``."""
        with log.open("ab") as sink:
            return self._popen(argv, sink, subprocess.STDOUT)

    def _popen(self, argv: list[str], stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
        # Own session: a terminal's Ctrl-C reaches only us (close() then stops the rest), and
        # a node's process group holds its SuperExec and ClientApps for kill_node().
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=self._env,
            cwd=self.workdir,
            start_new_session=True,
        )

    def _flwr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._bin("flwr"), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self._env,
            cwd=self.workdir,
            timeout=self.startup_timeout,
            check=False,
        )

    def _flwr_json(self, *args: str) -> dict[str, Any]:
        done = self._flwr(*args)
        answer = _json_object(done.stdout)
        if done.returncode != 0 or not answer.get("success", False):
            raise FederationError(f"flwr {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return answer

    def _node(self, index: int) -> _Node:
        if not 0 <= index < len(self._nodes):
            raise IndexError(f"no SuperNode {index} (there are {len(self._nodes)})")
        return self._nodes[index]


# -- helpers -----------------------------------------------------------------------------------


def config_arg(config: Mapping[str, ConfigValue]) -> str:
    """``k1=v1 k2=v2`` with TOML values, as ``--node-config`` and ``--run-config`` parse it."""
    return " ".join(f"{key}={_toml_value(key, value)}" for key, value in config.items())


def _toml_value(key: str, value: ConfigValue) -> str:
    if not _KEY.match(key):
        raise ValueError(f"config key {key!r}: letters, digits, '_', '-', '.'")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # Flower splits the argument with a regex that ends a quoted value at the first closing
    # quote, so a value may hold either kind of quote but not both; no newlines in TOML.
    if "\n" in value or "\r" in value:
        raise ValueError(f"config value of {key!r} holds a line break")
    if "'" not in value:
        return f"'{value}'"  # TOML literal string: no escapes
    if '"' not in value:
        return json.dumps(value)
    raise ValueError(f"config value of {key!r} holds both kinds of quotes")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _terminate(procs: Iterable[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM each live process, wait up to ``grace`` seconds for all, SIGKILL the rest."""
    live = [proc for proc in procs if proc.poll() is None]
    for proc in live:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _sweep(find: Callable[[], set[int]], grace: float) -> None:
    """Stop what outlived its parent (SuperExecs, app processes): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = find()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while find() and time.monotonic() < deadline:
            time.sleep(0.1)
    if left := find():
        raise FederationError(f"processes still alive after SIGKILL: {sorted(left)}")


def _marked_pids(needle: bytes) -> set[int]:
    """Live (non-zombie) processes whose environment holds ``needle`` (Linux /proc)."""
    found: set[int] = set()
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return found
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state != "Z" and needle in environ.split(b"\0"):
            found.add(int(entry.name))
    return found


def _run_id(stdout: str) -> int | None:
    match = _RUN_ID.search(stdout)
    return int(match.group(1)) if match else None


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object in a CLI's ``--format json`` output ({} if there is none)."""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _label(node: _Node) -> str:
    return f"SuperNode {node.index}"


def _read(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _tail_text(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _tail(text: str) -> str:
    return "\n--- log (tail)\n" + _tail_text(text)


def _log_tail(path: Path) -> str:
    return f"\n--- {path} (tail)\n" + _tail_text(_read(path))
