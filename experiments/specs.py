"""Reading the TOML spec files of sweeps, sensitivity analyses and calibrations.

The three loaders (:func:`experiments.runner.load_spec`,
:func:`experiments.sensitivity.load_sensitivity_spec` and
:func:`experiments.calibration.load_targets`) share the pieces here: reading the file,
checking its top-level keys, its name, description and base scenario, whole numbers,
tables of parameters and the fixed ``[params]`` with a top-level ``months``. Every
mistake is a one-line :class:`~experiments.errors.UserError` that names the file, the key
and the fix; where the loaders word a message differently, the caller passes its
wording in.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from model.parameters import SPECS, ParameterError, Params, unknown_message

from .errors import UserError
from .scenarios import Scenario, ScenarioError, load_scenario


def spec_error(path: Path, key: str, problem: str) -> UserError:
    """The one-line error for a mistake at one key of a spec file.

    Args:
        path: the spec file.
        key: where the mistake is, e.g. ``"seed"`` or ``"params.months"``.
        problem: what is wrong and how to fix it.

    Returns:
        The error, for the caller to raise.
    """
    return UserError(f"{path}: {key}: {problem}")


def read_toml_spec(path: Path, what: str, example: str) -> dict[str, Any]:
    """Read a spec file as TOML.

    Args:
        path: the file.
        what: what the file is, in the messages, e.g. ``"sweep spec"`` or
            ``"targets file"``.
        example: a shipped file to suggest when ``path`` does not exist.

    Returns:
        The parsed TOML.

    Raises:
        UserError: the file is missing, is not UTF-8 text or is not valid TOML.
    """
    if not path.is_file():
        raise UserError(f"{path}: no such {what}; give a .toml file such as {example}")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; a {what} is TOML text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); check quotes, brackets and "
                        "'=' signs") from None


def check_keys(path: Path, data: dict[str, Any], allowed: Sequence[str],
               parameter_hint: str | None = None) -> None:
    """Reject top-level keys a spec does not know, suggesting the nearest allowed one.

    Args:
        path: the spec file.
        data: the parsed file.
        allowed: the keys the spec allows, in the order to list them.
        parameter_hint: if given, the problem reported for a key that is a model
            parameter (say where parameters go instead).

    Raises:
        UserError: at the first key not in ``allowed``.
    """
    for key in data:
        if key not in allowed:
            if parameter_hint is not None and key in SPECS:
                raise spec_error(path, key, parameter_hint)
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise spec_error(path, key, f"unknown key; {hint}allowed keys: "
                                        f"{', '.join(allowed)}")


def whole(path: Path, data: dict[str, Any], key: str, default: int | None, low: int) -> int:
    """A whole number of at least ``low`` at ``key`` (``default`` if absent).

    Args:
        path: the spec file.
        data: the table holding ``key``.
        key: the key to read.
        default: the value when ``key`` is absent (``None``: the key is required).
        low: the smallest value allowed.

    Returns:
        The number.

    Raises:
        UserError: the value is not a whole number (true/false are not) or is below ``low``.
    """
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise spec_error(path, key, f"expected a whole number, got {value!r}")
    if value < low:
        raise spec_error(path, key, f"{value} is too small; give {low} or more")
    return value


def table(path: Path, data: dict[str, Any], key: str, *, parameters: bool = True,
          hint: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The ``[key]`` table of ``name = value`` lines (empty if absent).

    Args:
        path: the spec file.
        data: the parsed file.
        key: the table's name.
        parameters: whether every name in the table must be a model parameter.
        hint: given an unknown name, text to add to its error (``""`` for none).

    Returns:
        The table.

    Raises:
        UserError: ``key`` is not a table, or (with ``parameters``) one of its names is
            not a parameter.
    """
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise spec_error(path, key, f"expected a [{key}] table of name = value lines")
    if parameters:
        for name in value:
            if name not in SPECS:
                extra = hint(name) if hint else ""
                raise UserError(f"{path}: {key}.{unknown_message(name)}{extra}")
    return value


def text(path: Path, data: dict[str, Any], key: str, default: str) -> str:
    """Free text in quotes at ``key`` (``default`` if absent).

    Raises:
        UserError: the value is not text.
    """
    value = data.get(key, default)
    if not isinstance(value, str):
        raise spec_error(path, key, "expected text in quotes")
    return value


def folder_name(path: Path, data: dict[str, Any]) -> str:
    """The spec's ``name`` (default: the file's stem), which names its output folder.

    Raises:
        UserError: the name is not text made of letters, digits, ``_`` and ``-``.
    """
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise spec_error(path, "name", f"{name!r} cannot name a folder; use letters, digits, "
                                       "_ and -")
    return name


def base_scenario(path: Path, data: dict[str, Any]) -> Scenario:
    """The scenario named by ``base`` (default ``"baseline"``).

    A ``.toml`` name is looked up beside the spec file first.

    Raises:
        UserError: ``base`` is not a name in quotes, or the scenario cannot be loaded.
    """
    base_name = data.get("base", "baseline")
    if not isinstance(base_name, str) or not base_name:
        raise spec_error(path, "base", f"expected a scenario name in quotes, got {base_name!r}")
    if base_name.endswith(".toml") and (path.parent / base_name).exists():
        base_name = str(path.parent / base_name)
    try:
        return load_scenario(base_name)
    except ScenarioError as exc:
        raise spec_error(path, "base", str(exc)) from None


def spec_header(path: Path, data: dict[str, Any], name_key: str = "name"
                ) -> tuple[str, str, Scenario]:
    """The name, description and base scenario of a spec, checked in that order.

    Args:
        path: the spec file.
        data: the parsed file.
        name_key: ``"name"`` (it names the output folder, so must be folder-safe; see
            :func:`folder_name`) or another key such as ``"title"`` holding free text.
            Either defaults to the file's stem.

    Returns:
        ``(name, description, base)``.

    Raises:
        UserError: at the first of the three that is wrong.
    """
    if name_key == "name":
        name = folder_name(path, data)
    else:
        name = text(path, data, name_key, path.stem)
    description = text(path, data, "description", "")
    return name, description, base_scenario(path, data)


def base_params(path: Path, data: dict[str, Any], base: Scenario,
                lists_hint: str | None = None) -> tuple[dict[str, Any], Params]:
    """The fixed ``[params]`` (with a top-level ``months``) applied to the base scenario.

    Names are checked one at a time, each before its value.

    Args:
        path: the spec file.
        data: the parsed file.
        base: the base scenario.
        lists_hint: what to say after ``expected a single value;`` when a value is a
            list or table (default: ``expected a single value, got <value>``).

    Returns:
        ``(fixed, params)``: the fixed values (``months`` included when given at the top
        level) and the base scenario's parameters with them applied.

    Raises:
        UserError: ``[params]`` is not a table, names an unknown parameter, has a list or
            table value or an invalid one, or ``months`` is given twice or is not a whole
            number of at least 1.
    """
    fixed = data.get("params", {})
    if not isinstance(fixed, dict):
        raise spec_error(path, "params", "expected a [params] table of name = value lines")
    for k, v in fixed.items():
        if k not in SPECS:
            raise UserError(f"{path}: params.{unknown_message(k)}")
        if isinstance(v, list | dict):
            problem = (f"expected a single value, got {v!r}" if lists_hint is None
                       else f"expected a single value; {lists_hint}")
            raise spec_error(path, f"params.{k}", problem)
    if "months" in data:
        if "months" in fixed:
            raise spec_error(path, "months", "given both at the top level and in [params]; "
                                             "give it once")
        fixed = {**fixed, "months": whole(path, data, "months", None, 1)}
    try:
        return fixed, base.params.replace(**fixed)
    except ParameterError as exc:
        raise UserError(f"{path}: params.{exc}") from None
