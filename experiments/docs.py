"""Regenerate the generated parts of ``docs/ODD.md`` from the model's own definitions.

The model description is written by hand, except for four blocks that are generated so
that they can never drift from the code:

- ``parameters``: the parameter table (``model.parameters.parameter_table``), one table
  per parameter group;
- ``summary``: the run-summary metrics and their exact definitions
  (``model.outputs.SUMMARY_DEFINITIONS``);
- ``timeseries``: the monthly series with labels and units (``model.outputs.TIMESERIES``);
- ``schedule``: the monthly process order (``model.processes.PROCESSES``) with the first
  line of each process's docstring.

Each block sits between marker comments in the document::

    <!-- BEGIN GENERATED: parameters -->
    ...
    <!-- END GENERATED: parameters -->

Usage::

    python -m experiments.docs           # rewrite the blocks in place
    python -m experiments.docs --check   # exit 1 with a one-line message if stale

The check also fails when a process in the schedule has no submodel section named after
it (a heading ``### 7.<n> <process name> ...``), so a new process cannot go undocumented.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

from model import outputs, parameters, processes

ODD_PATH = Path(__file__).resolve().parent.parent / "docs" / "ODD.md"
"""The model description whose generated blocks this module maintains."""

GROUP_TITLES = {
    "time and population": "Time and population",
    "network": "Communities and the social network",
    "stigma": "Stigma dynamics",
    "identification": "Identification and disclosure",
    "referral": "Referral and case management",
    "recovery": "Recovery in care",
    "family": "Family work",
    "reintegration": "Reintegration",
    "re-exploitation": "Re-exploitation",
    "unassisted recovery": "Unassisted recovery",
    "staffing": "Staffing",
    "funding": "Funding",
    "community": "Community capacity",
}
"""Display titles of parameter groups; a group missing here is shown capitalised."""


class DocsError(ValueError):
    """The document cannot be regenerated (a marker is missing or malformed)."""


def _note(source: str) -> str:
    return (f"<!-- Generated from {source} by `python -m experiments.docs`; "
            "edit the source, not this block. -->")


def _cell(text: object) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def parameters_block() -> str:
    """The parameter table, split into one table per parameter group."""
    lines = parameters.parameter_table(markdown=True).rstrip("\n").split("\n")
    header, rows = lines[:2], lines[2:]
    by_group: dict[str, list[str]] = {}
    for row in rows:
        name = row.split("|")[1].strip()
        group = parameters.SPECS[name].group
        by_group.setdefault(group, []).append(row)
    out = [_note("`model/parameters.py`"), ""]
    out.append(f"{len(rows)} parameters in {len(by_group)} groups. *Allowed* is the range "
               "the model accepts (values outside it are rejected); *plausible* is the range "
               "used for sensitivity analysis. Provenance names a section of Asquith & "
               "Turner (2008) in double quotes, an evidence figure, or says *assumption*.")
    for group, group_rows in by_group.items():
        title = GROUP_TITLES.get(group, group.capitalize())
        out += ["", f"#### {title} (`{group}`)", "", *header, *group_rows]
    return "\n".join(out) + "\n"


def summary_block() -> str:
    """The run-summary metrics with their definitions, as a table."""
    out = [_note("`model/outputs.py` (`SUMMARY_DEFINITIONS`)"), "",
           "| metric | definition |", "|---|---|"]
    out += [f"| `{key}` | {_cell(text)} |" for key, text in outputs.SUMMARY_DEFINITIONS.items()]
    return "\n".join(out) + "\n"


def timeseries_block() -> str:
    """The monthly series: column, label and unit, as a table."""
    out = [_note("`model/outputs.py` (`TIMESERIES`)"), "",
           "| column | label | unit |", "|---|---|---|"]
    for column, entry in outputs.TIMESERIES.items():
        label, unit = entry[0], entry[1]
        out.append(f"| `{column}` | {_cell(label)} | {_cell(unit)} |")
    return "\n".join(out) + "\n"


def _first_line(fn: Callable) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no docstring)"


def schedule_block() -> str:
    """The monthly process order with each process's one-line summary."""
    out = [_note("`model/processes.py` (`PROCESSES`)"), ""]
    for i, fn in enumerate(processes.PROCESSES, start=1):
        out.append(f"{i}. `{fn.__name__}` (submodel 7.{i}): {_first_line(fn)}")
    return "\n".join(out) + "\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "parameters": parameters_block,
    "summary": summary_block,
    "timeseries": timeseries_block,
    "schedule": schedule_block,
}
"""Generated block name -> function producing its content."""


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"


def render(text: str) -> str:
    """Return ``text`` with every generated block replaced by freshly generated content.

    Args:
        text: the whole Markdown document.

    Returns:
        The document with the content between each pair of markers regenerated; the rest
        is unchanged.

    Raises:
        DocsError: a block's markers are missing, repeated or out of order.
    """
    for name, make in BLOCKS.items():
        begin, end = _markers(name)
        if text.count(begin) != 1 or text.count(end) != 1:
            raise DocsError(f"the document needs exactly one '{begin}' and one '{end}' "
                            f"(found {text.count(begin)} and {text.count(end)})")
        start, stop = text.index(begin) + len(begin), text.index(end)
        if stop < start:
            raise DocsError(f"the document: '{end}' comes before '{begin}'")
        text = text[:start] + "\n" + make() + text[stop:]
    return text


def undocumented_processes(text: str) -> list[str]:
    """Processes in the schedule without a submodel heading ``### 7.<n> <name>``."""
    missing = []
    for fn in processes.PROCESSES:
        heading = re.compile(rf"^###\s+7\.\d+\s+`?{re.escape(fn.__name__)}`?(\s|$)", re.M)
        if not heading.search(text):
            missing.append(fn.__name__)
    return missing


def problems(path: Path = ODD_PATH) -> list[str]:
    """One-line descriptions of everything that makes the document out of date.

    Args:
        path: the Markdown document to check.
    """
    if not path.exists():
        return [f"{path} does not exist"]
    text = path.read_text(encoding="utf-8")
    try:
        fresh = render(text)
    except DocsError as exc:
        return [str(exc)]
    found = []
    if fresh != text:
        found.append(f"{path.name} is out of date with the code; run "
                     "'python -m experiments.docs'")
    missing = undocumented_processes(text)
    if missing:
        found.append(f"{path.name} has no submodel section for {', '.join(missing)}; add a "
                     "'### 7.<n> <name> ...' heading")
    return found


def check(path: Path = ODD_PATH) -> bool:
    """True if the document's generated blocks are current and every process is documented.

    Args:
        path: the Markdown document to check.
    """
    return not problems(path)


def main(argv: list[str] | None = None) -> int:
    """Regenerate ``docs/ODD.md`` in place, or check it with ``--check``.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 when done or up to date, 1 when ``--check`` finds it stale or the
        document cannot be regenerated.
    """
    parser = argparse.ArgumentParser(prog="python -m experiments.docs",
                                     description="Regenerate the generated blocks of "
                                                 "docs/ODD.md from the model's definitions.")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the document is out of date")
    parser.add_argument("--path", type=Path, default=ODD_PATH,
                        help="the document (default: docs/ODD.md)")
    args = parser.parse_args(argv)
    if args.check:
        found = problems(args.path)
        if found:
            print("; ".join(found), file=sys.stderr)
            return 1
        print(f"{args.path.name} is up to date")
        return 0
    if not args.path.exists():
        print(f"{args.path} does not exist", file=sys.stderr)
        return 1
    text = args.path.read_text(encoding="utf-8")
    try:
        fresh = render(text)
    except DocsError as exc:
        print(exc, file=sys.stderr)
        return 1
    if fresh == text:
        print(f"{args.path.name} is already up to date")
    else:
        args.path.write_text(fresh, encoding="utf-8")
        print(f"{args.path.name}: generated blocks updated")
    missing = undocumented_processes(fresh)
    if missing:
        print(f"warning: no submodel section for {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
