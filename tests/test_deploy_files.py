"""deploy/: the systemd units, their env examples, the Containerfile and the k8s manifests.

Cheap static checks: units parse as INI, name executables this venv installs and only flags
their ``--help`` lists; every variable a unit uses is in its env example; the manifests load as
YAML (only if PyYAML is importable: it is not a dependency).
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SYSTEMD = DEPLOY / "systemd"
BIN = Path(sys.executable).parent  # not resolved: the venv's bin dir, not the base Python's
VENV = "/opt/fedrisk/venv/bin/"  # where the units expect the venv on a host
IMAGE = "fedrisk:0.1.0"

UNITS = {
    # unit: (env example, what ExecStart runs)
    "fedrisk-superlink.service": ("superlink.env.example", ("flower-superlink",)),
    "fedrisk-supernode@.service": ("supernode.env.example", ("flower-supernode",)),
    "fedrisk-precheck.service": ("precheck.env.example", ("fedrisk", "node", "serve")),
}
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_FLAG = re.compile(r"--[a-z][a-z0-9-]*")


class _UnitParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # systemd keys are case-sensitive


def _unit(name: str) -> configparser.ConfigParser:
    # systemd allows repeated keys (Environment=); strict=False keeps the last, enough here.
    parser = _UnitParser(
        strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";")
    )
    parser.read_string((SYSTEMD / name).read_text(encoding="utf-8"))
    return parser


def _command(value: str) -> list[str]:
    """ExecStart as argv: systemd's backslash line continuations joined, quotes removed."""
    return shlex.split(value.replace("\\\n", " "))


def _env_file(name: str) -> dict[str, str]:
    """KEY=VALUE lines of an env example, commented-out ones included (they document keys)."""
    found = {}
    for line in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@pytest.fixture(scope="module")
def help_texts() -> dict[str, str]:
    """``--help`` of each command the units run, from this venv (in parallel: ~1 s each)."""
    # Wide columns: rich (typer's help) would otherwise wrap or cut long option names.
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
    env["COLUMNS"] = "200"
    procs = {
        " ".join(cmd): subprocess.Popen(
            [str(BIN / cmd[0]), *cmd[1:], "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        for _, cmd in UNITS.values()
    }
    return {key: proc.communicate(timeout=120)[0] for key, proc in procs.items()}


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_parses_with_expected_sections(name: str) -> None:
    unit = _unit(name)
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["User"] == "fedrisk"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].startswith("/etc/fedrisk/")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service[key] == value, key
    assert service["ReadWritePaths"].startswith("/var/lib/fedrisk/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_execstart_runs_an_installed_command_with_known_flags(
    name: str, help_texts: dict[str, str]
) -> None:
    _, expected = UNITS[name]
    argv = _command(_unit(name)["Service"]["ExecStart"])
    assert argv[0].startswith(VENV)
    executable = argv[0].removeprefix(VENV)
    assert (BIN / executable).exists(), f"{executable} is not installed in {BIN}"
    assert tuple([executable, *argv[1 : len(expected)]]) == expected
    # Flags in the unit, and those an env example passes through a $VAR (PreCheck's TLS).
    flags = {arg for arg in argv[1:] if _FLAG.fullmatch(arg)}
    for value in _env_file(UNITS[name][0]).values():
        # systemd unquotes the value, then splits an unbraced $VAR at whitespace.
        words = [word for part in shlex.split(value) for word in part.split()]
        flags |= {word for word in words if _FLAG.fullmatch(word)}
    help_text = help_texts[" ".join(expected)]
    unknown = {flag for flag in flags if not re.search(rf"{flag}(?![\w-])", help_text)}
    assert not unknown, f"{name}: {sorted(unknown)} not in `{' '.join(expected)} --help`"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_every_variable_a_unit_uses_is_in_its_env_example(name: str) -> None:
    env_name, _ = UNITS[name]
    service = _unit(name)["Service"]
    used = {braced or bare for braced, bare in _VAR.findall(service["ExecStart"])}
    missing = used - set(_env_file(env_name))
    assert not missing, f"{name} uses {sorted(missing)}, which {env_name} does not show"


def test_precheck_reloads_with_sighup() -> None:
    service = _unit("fedrisk-precheck.service")["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_supernode_is_a_template_with_a_loopback_runtime_api() -> None:
    service = _unit("fedrisk-supernode@.service")["Service"]
    argv = _command(service["ExecStart"])
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "/etc/fedrisk/keys/%i.key" in argv
    assert service["EnvironmentFile"] == "/etc/fedrisk/supernode-%i.env"


def test_containerfile_copies_only_what_exists() -> None:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^USER 10001", text, re.MULTILINE)  # numeric: runAsNonRoot can check it
    sources = []
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository root"


def _manifests() -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml")
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return docs


def _pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc["spec"]["template"]["spec"] for doc in docs if "template" in doc.get("spec", {})]


def test_k8s_manifests_load_as_yaml() -> None:
    docs = _manifests()
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert kinds >= {
        ("Namespace", "fedrisk"),
        ("PersistentVolumeClaim", "fedrisk-superlink-state"),
        ("Deployment", "fedrisk-superlink"),
        ("Service", "fedrisk-superlink"),
        ("StatefulSet", "fedrisk-supernode"),
    }
    for doc in docs:
        assert doc["kind"] != "Secret", "Secrets are created from make_certs output, not shipped"
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "fedrisk"


def test_k8s_containers_use_the_image_and_installed_commands() -> None:
    for spec in _pod_specs(_manifests()):
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"] == IMAGE
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            command = container["command"][0]
            if not command.startswith("/bin/"):
                assert (BIN / command).exists(), f"{command} is not installed in {BIN}"
