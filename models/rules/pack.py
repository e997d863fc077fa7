"""Rule packs: which rules run, with which parameters and severities (规则库 as data).

A pack is a TOML file with one ``[rules.<rule_id>]`` table per rule of the catalogue::

    [rules.batch_prescribing]
    enabled = true
    severity = "warn"
    min_patients = 3
    window_seconds = 60

Operators change parameters without touching code; every flag records the pack's version, a
hash of its meaning (comments and layout do not change it). A pack that misses a rule, names an
unknown one or sets a field wrongly is refused with the rule and field named.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from fedrisk.models.errors import RulePackError
from fedrisk.models.kb import SEVERITIES
from fedrisk.models.rules.catalogue import CATALOGUE, RULES, Param, ParamValue, RuleSpec

DEFAULT_PACK = "default.toml"


@dataclass(frozen=True)
class RuleConfig:
    """One rule as a pack sets it."""

    rule_id: str
    enabled: bool
    severity: str | None
    params: Mapping[str, ParamValue]

    def integer(self, name: str) -> int:
        value = self.params[name]
        assert isinstance(value, int)
        return value

    def number(self, name: str) -> Decimal:
        return Decimal(self.params[name])


@dataclass(frozen=True)
class RulePack:
    """A validated rule pack."""

    name: str
    rules: Mapping[str, RuleConfig]
    version: str
    source: str

    def enabled(self, rule_id: str) -> bool:
        return self.rules[rule_id].enabled


def load_rule_pack(path: Path | None = None) -> RulePack:
    """Load and check a rule pack file; ``None`` loads the pack shipped with fedrisk."""
    if path is None:
        text = resources.files("fedrisk.models.rules").joinpath(DEFAULT_PACK).read_text("utf-8")
        source = f"fedrisk default ({DEFAULT_PACK})"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RulePackError(f"{path}: cannot read rule pack ({exc.strerror})") from None
        source = str(path)
    return parse_rule_pack(text, source)


def parse_rule_pack(text: str, source: str) -> RulePack:
    """Check a rule pack's TOML text (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulePackError(f"{source}: not valid TOML ({exc})") from None
    unknown_top = sorted(set(data) - {"name", "rules"})
    if unknown_top:
        raise RulePackError(f"{source}: unknown top-level field {unknown_top[0]!r}")
    tables = data.get("rules")
    if not isinstance(tables, dict):
        raise RulePackError(f"{source}: no [rules.<rule_id>] tables")
    for rule_id in tables:
        if rule_id not in RULES:
            raise RulePackError(f"{source}: rule {rule_id!r}: not a rule id of contract v1")
    missing = [spec.rule_id for spec in CATALOGUE if spec.rule_id not in tables]
    if missing:
        raise RulePackError(
            f"{source}: rule {missing[0]!r}: missing (list every rule; "
            "set enabled = false to turn one off)"
        )
    rules = {spec.rule_id: _rule(source, spec, tables[spec.rule_id]) for spec in CATALOGUE}
    name = str(data.get("name", Path(source).stem))
    return RulePack(name, rules, _version(name, rules), source)


def _rule(source: str, spec: RuleSpec, table: object) -> RuleConfig:
    where = f"{source}: rule {spec.rule_id!r}"
    if not isinstance(table, dict):
        raise RulePackError(f"{where}: must be a table [rules.{spec.rule_id}]")
    allowed = {"enabled", "severity"} | {p.name for p in spec.params}
    for key in table:
        if key not in allowed:
            raise RulePackError(f"{where}: unknown field {key!r} (allowed: {sorted(allowed)})")
    enabled = table.get("enabled")
    if not isinstance(enabled, bool):
        raise RulePackError(f"{where}: field 'enabled' must be true or false")
    severity = _severity(where, spec, table.get("severity"))
    params = {p.name: _param(where, p, table.get(p.name)) for p in spec.params}
    return RuleConfig(spec.rule_id, enabled, severity, params)


def _severity(where: str, spec: RuleSpec, value: object) -> str | None:
    if spec.severity_from_kb:
        if value is not None:
            raise RulePackError(
                f"{where}: field 'severity' is taken from the knowledge base; remove it"
            )
        return None
    if value not in SEVERITIES:
        raise RulePackError(f"{where}: field 'severity' must be one of {', '.join(SEVERITIES)}")
    return str(value)


def _param(where: str, param: Param, value: object) -> ParamValue:
    field = f"{where}: field {param.name!r}"
    if value is None:
        raise RulePackError(f"{field}: missing ({param.doc}; default {param.default})")
    parsed = _typed(param, value)
    if parsed is None:
        raise RulePackError(f"{field}: {value!r} is not {_kind_text(param)}")
    if param.minimum is not None and not isinstance(parsed, bool) and parsed < param.minimum:
        raise RulePackError(f"{field}: {value!r} is below the minimum {param.minimum}")
    return parsed


def _typed(param: Param, value: object) -> ParamValue | None:
    if param.kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if param.kind == "int":
        return value if isinstance(value, int) else None
    if isinstance(value, int | str):  # floats are refused: money is written as "8000.00"
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _kind_text(param: Param) -> str:
    return {
        "int": "a whole number",
        "decimal": 'a whole number or a decimal in quotes (e.g. "8000.00")',
        "bool": "true or false",
    }[param.kind]


def _version(name: str, rules: Mapping[str, RuleConfig]) -> str:
    canonical = {
        "name": name,
        "rules": {
            rid: {
                "enabled": r.enabled,
                "severity": r.severity,
                "params": {k: str(v) for k, v in sorted(r.params.items())},
            }
            for rid, r in sorted(rules.items())
        },
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
