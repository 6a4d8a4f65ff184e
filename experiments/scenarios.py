"""Scenario files: named, documented sets of parameter overrides (TOML, data not code).

A scenario file looks like::

    title = "Rolling funding"
    description = "Grants renewed before they end ..."
    extends = "baseline"          # optional: start from another scenario

    [params]
    funding_scheme = "rolling"

Files are read with ``tomllib``; nothing in them is ever executed. Every value is
validated through the model's single parameter set (``model.parameters.Params``).
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.parameters import SPECS, ParameterError, Params, unknown_message

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
TOP_LEVEL_KEYS = ("title", "description", "extends", "params")


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is one line naming file, key and fix."""


@dataclass(frozen=True)
class Scenario:
    """A loaded, validated scenario."""

    name: str
    title: str
    description: str
    overrides: dict[str, Any]
    params: Params
    path: Path | None = None
    chain: tuple[str, ...] = field(default=())


def scenario_names(directory: Path = SCENARIO_DIR) -> list[str]:
    """Names of the scenario files shipped in ``directory``."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def resolve(name_or_path: str, directory: Path = SCENARIO_DIR) -> Path:
    """The file for a scenario name or path, or a one-line ScenarioError."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists() or "/" in name_or_path:
        if not path.exists():
            raise ScenarioError(f"{name_or_path}: no such file; give an existing .toml file or "
                                f"a scenario name ({', '.join(scenario_names(directory))})")
        if path.is_dir():
            raise ScenarioError(f"{name_or_path}: is a folder; give a scenario .toml file")
        return path
    candidate = directory / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    names = scenario_names(directory)
    near = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise ScenarioError(f"unknown scenario {name_or_path!r}; {hint}"
                        f"known scenarios: {', '.join(names)} (or give a .toml file path)")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a one-line ScenarioError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror}); check the path and "
                            "permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file (not UTF-8); a scenario is a TOML text "
                            "file") from None
    if not text.strip():
        raise ScenarioError(f"{path}: the file is empty; a scenario needs at least a title "
                            "and a [params] table")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc}); check the syntax, e.g. "
                            'key = "text" or key = 1.5') from None


def load_scenario(name_or_path: str, directory: Path = SCENARIO_DIR,
                  _seen: tuple[str, ...] = ()) -> Scenario:
    """Load and validate a scenario by name or file path, following ``extends``.

    Raises:
        ScenarioError: with one line naming the file, the key, the problem and the fix.
    """
    path = resolve(name_or_path, directory)
    key = str(path.resolve())
    if key in _seen:
        cycle = " -> ".join(Path(s).stem for s in (*_seen, key))
        raise ScenarioError(f"{path}: extends: cycle in 'extends' ({cycle}); remove one link")
    data = read_toml(path)
    for k in data:
        if k not in TOP_LEVEL_KEYS:
            if k in SPECS:
                raise ScenarioError(f"{path}: {k}: parameters belong under [params]; move it "
                                    "there")
            near = difflib.get_close_matches(k, TOP_LEVEL_KEYS, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ScenarioError(f"{path}: unknown key {k!r}; {hint}allowed top-level keys: "
                                f"{', '.join(TOP_LEVEL_KEYS)}")
    title = data.get("title", path.stem)
    description = data.get("description", "")
    for k, v in (("title", title), ("description", description)):
        if not isinstance(v, str):
            raise ScenarioError(f"{path}: {k}: expected text in quotes, got {v!r}")
    overrides = data.get("params", {})
    if not isinstance(overrides, dict):
        raise ScenarioError(f"{path}: params: expected a [params] table of name = value")
    base: dict[str, Any] = {}
    chain: tuple[str, ...] = ()
    if "extends" in data:
        parent_name = data["extends"]
        if not isinstance(parent_name, str) or not parent_name:
            raise ScenarioError(f"{path}: extends: expected a scenario name in quotes, got "
                                f"{parent_name!r}")
        try:
            # A parent is looked up beside the file, then among the given and shipped ones.
            where = next((d for d in (path.parent, directory)
                          if (d / f"{parent_name}.toml").exists()), SCENARIO_DIR)
            parent = load_scenario(parent_name, where, (*_seen, key))
        except ScenarioError as exc:
            msg = str(exc)
            if msg.startswith("unknown scenario"):
                raise ScenarioError(f"{path}: extends: {msg}") from None
            raise
        base = parent.params.to_dict()
        chain = (*parent.chain, parent.name)
    for k, v in overrides.items():
        if k not in SPECS:
            raise ScenarioError(f"{path}: params.{unknown_message(k)}")
        if isinstance(v, dict | list):
            raise ScenarioError(f"{path}: params.{k}: expected a single value, got {v!r}")
        spec = SPECS[k]
        if spec.type in (int, float) and isinstance(v, str):
            raise ScenarioError(f"{path}: params.{k}: expected a number, got the text {v!r}; "
                                "remove the quotes")
    try:
        params = Params.from_dict({**base, **overrides})
    except ParameterError as exc:
        raise ScenarioError(f"{path}: params.{exc}") from None
    return Scenario(name=path.stem, title=title, description=description,
                    overrides=dict(overrides), params=params, path=path, chain=chain)


def list_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every shipped scenario, loaded (raises on the first broken one)."""
    return [load_scenario(n, directory) for n in scenario_names(directory)]
