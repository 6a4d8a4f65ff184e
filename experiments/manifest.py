"""Self-describing results: output folders and ``manifest.json``."""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any

import model

from .errors import UserError

RESULTS_DIR = Path("results")


def git_commit() -> str:
    """The current git commit of the code, or 'unknown' outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=False)
        commit = out.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5,
                               check=False).stdout.strip()
        return (commit + ("+dirty" if dirty else "")) if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_output_dir(kind: str, out: str | Path | None, allow_existing: bool = False) -> Path:
    """A folder for results: ``out`` if given (must be new or empty), else a fresh one.

    A folder that already holds results is never overwritten silently.
    """
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS_DIR / f"{kind}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = RESULTS_DIR / f"{kind}-{stamp}-{n}"
    else:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path}: is a file; give a folder path")
        if path.exists() and any(path.iterdir()) and not allow_existing:
            raise UserError(f"--out {path}: folder already holds results; choose a new folder "
                            "(results are never overwritten)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def jsonable(value: Any) -> Any:
    """Convert numpy scalars and NaN (to null) for JSON."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN becomes null)."""
    path.write_text(json.dumps(jsonable(data), indent=2) + "\n")


def manifest(command: str, **extra: Any) -> dict[str, Any]:
    """The manifest: package version, git commit, command, time, plus ``extra``."""
    return {
        "package": "reintegration-sim",
        "version": model.__version__,
        "git_commit": git_commit(),
        "command": command,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "note": "Scenario exploration under stated assumptions with synthetic agents; not a "
                "prediction about real children and not a basis for decisions about an "
                "individual child.",
        **extra,
    }
