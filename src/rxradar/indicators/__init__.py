"""Patient indicators as data: the declarations in ``definitions.toml`` and the one query they make.

Every indicator is one instance of a declaration (id, title, description, unit, kind, direction,
relation, SQL, parameters, citation). A declaration with ``instances`` gives one indicator per
authority's parameters (PBSS and PQA multiple-provider episodes, 50 and 90 MME days). Parameters
are bound by name (``$<indicator>__<parameter>``), never formatted into the SQL, and can be
changed with the ``indicator_params`` setting.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from typing import Any

RELATIONS = ("segments", "opioid_rx", "query", "derived")
KINDS = ("measure", "flag")
BUILT_INS = ("period_days",)
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Indicator:
    id: str
    title: str
    description: str
    unit: str
    kind: str
    direction: str
    relation: str
    sql: str
    citation: str
    parameters: dict[str, float] = field(default_factory=dict)
    value: str = "value"
    default: Any = None

    def bound(self, text: str) -> str:
        """``text`` with each ``$name`` renamed to this indicator's own parameter name."""
        def rename(m: re.Match) -> str:
            name = m.group(1)
            if name in BUILT_INS:
                return m.group(0)
            if name not in self.parameters:
                raise ValueError(f"indicator {self.id}: ${name} is not one of its parameters {sorted(self.parameters)}")
            return f"${self.id}__{name}"
        return _PARAM.sub(rename, text)

    def bindings(self) -> dict[str, float]:
        return {f"{self.id}__{k}": v for k, v in self.parameters.items()}


@cache
def declarations() -> tuple[dict, ...]:
    text = files("rxradar.indicators").joinpath("definitions.toml").read_text()
    return tuple(tomllib.loads(text)["indicator"])


def indicators(overrides: dict[str, dict[str, float]] | None = None) -> list[Indicator]:
    """Every indicator instance in declaration order, with parameter ``overrides``
    (``{indicator id: {parameter: value}}``) applied."""
    out: list[Indicator] = []
    for d in declarations():
        base = {k: d[k] for k in ("id", "title", "description", "unit", "kind", "direction", "relation", "sql",
                                  "citation")}
        base.update(value=d.get("value", "value"), default=d.get("default"))
        params = dict(d.get("parameters", {}))
        instances = d.get("instances") or {d["id"]: {}}
        for instance_id, spec in instances.items():
            spec = dict(spec)
            text = {k: spec.pop(k) for k in ("title", "citation", "description") if k in spec}
            unknown = set(spec) - set(params)
            if unknown:
                raise ValueError(f"indicator {instance_id}: unknown parameters {sorted(unknown)}")
            out.append(Indicator(**{**base, **text, "id": instance_id, "parameters": {**params, **spec}}))
    _check(out)
    overrides = overrides or {}
    known = {i.id: i for i in out}
    for iid, values in overrides.items():
        if iid not in known:
            raise ValueError(f"indicator_params: no indicator {iid!r}; indicators are {', '.join(known)}")
        bad = set(values) - set(known[iid].parameters)
        if bad:
            raise ValueError(f"indicator_params: {iid} has no parameter {', '.join(sorted(bad))} "
                             f"(its parameters: {', '.join(known[iid].parameters) or 'none'})")
    return [replace(i, parameters={**i.parameters, **overrides.get(i.id, {})}) for i in out]


def _check(items: list[Indicator]) -> None:
    seen: set[str] = set()
    computed: set[str] = set()  # what a derived indicator may use: the columns computed before it
    for i in items:
        if i.id in seen:
            raise ValueError(f"indicator {i.id} is declared twice")
        if i.relation not in RELATIONS or i.kind not in KINDS:
            raise ValueError(f"indicator {i.id}: relation must be one of {RELATIONS} and kind one of {KINDS}")
        if i.relation == "derived":
            unknown = {w for w in re.findall(r"\b[a-z_][a-z0-9_]*\b", _PARAM.sub("", i.sql))
                       if w not in computed and w not in _SQL_WORDS}
            if unknown:
                raise ValueError(f"derived indicator {i.id} uses {sorted(unknown)}, not non-derived indicators "
                                 "declared before it")
        else:
            computed.add(i.id)
        i.bound(i.sql), i.bound(i.value)  # every $name must be a declared parameter
        seen.add(i.id)


_SQL_WORDS = {"and", "or", "not", "is", "null", "true", "false", "coalesce", "least", "greatest", "case", "when",
              "then", "else", "end", "between", "in"}


def parse_overrides(text: str) -> dict[str, dict[str, float]]:
    """``"mpe_pbss.window_days=90; oig_high_amounts.threshold=100"`` → ``{id: {param: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for item in filter(None, (s.strip() for s in re.split(r"[;,]", text or ""))):
        m = re.fullmatch(r"([a-z0-9_]+)\.([a-z0-9_]+)\s*=\s*(-?[0-9.]+)", item)
        if not m:
            raise ValueError(f"indicator_params: {item!r} is not indicator.parameter=number")
        value = float(m.group(3))
        out.setdefault(m.group(1), {})[m.group(2)] = int(value) if value.is_integer() else value
    return out


def indicator_sql(items: list[Indicator]) -> tuple[str, dict[str, Any]]:
    """One query giving a row per patient (``patients``: persons with opioids on hand in the
    period): the run's ``pid`` and a column per indicator, with its bound parameters."""
    groups: dict[str, list[str]] = {"segments": [], "opioid_rx": []}
    ctes, joins, base_cols, derived_cols = [], [], [], []
    params: dict[str, Any] = {}
    for i in items:
        params.update(i.bindings())
        if i.relation in groups:
            groups[i.relation].append(f"{i.bound(i.sql)} AS {i.id}")
            column = f"{i.relation}_g.{i.id}"
        elif i.relation == "query":
            ctes.append(f"{i.id}_q AS ({i.bound(i.sql)})")
            joins.append(f"LEFT JOIN {i.id}_q ON {i.id}_q.pid = patients.pid")
            column = re.sub(r"\bvalue\b", f"{i.id}_q.value", i.bound(i.value))
        else:
            derived_cols.append(_with_default(f"({i.bound(i.sql)})", i) + f" AS {i.id}")
            continue
        base_cols.append(_with_default(column, i) + f" AS {i.id}")
    for relation, cols in groups.items():
        if cols:
            ctes.append(f"{relation}_g AS (SELECT pid, {', '.join(cols)} FROM {relation} GROUP BY pid)")
            joins.append(f"LEFT JOIN {relation}_g ON {relation}_g.pid = patients.pid")
    ctes.insert(0, "patients AS (SELECT DISTINCT pid FROM segments WHERE n_opioid > 0)")
    inner = f"SELECT patients.pid, {', '.join(base_cols)} FROM patients {' '.join(joins)}"
    outer = f"SELECT *{''.join(', ' + c for c in derived_cols)} FROM ({inner})"
    return f"WITH {', '.join(ctes)} {outer}", params


def _with_default(expression: str, i: Indicator) -> str:
    if i.default is None:
        return expression
    literal = ("true" if i.default else "false") if isinstance(i.default, bool) else repr(i.default)
    return f"coalesce({expression}, {literal})"


def markdown(items: list[Indicator] | None = None) -> str:
    """The indicator reference (docs/indicators.md), generated from the declarations."""
    lines = ["# Patient indicators", "",
             "Generated from `src/rxradar/indicators/definitions.toml` by `rxradar indicators --markdown`; "
             "do not edit by hand. Change a parameter with the `indicator_params` setting, e.g. "
             "`mpe_pbss.window_days=90`.", ""]
    for i in items or indicators():
        params = ", ".join(f"`{k}` = {v:g}" for k, v in i.parameters.items()) or "none"
        lines += [f"## `{i.id}`: {i.title}", "", i.description, "",
                  f"- kind: {i.kind} ({i.unit}); {i.direction.replace('_', ' ')}",
                  f"- computed over: {i.relation}", f"- parameters: {params}", f"- source: {i.citation}", ""]
    return "\n".join(lines)
