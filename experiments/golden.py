"""The golden baseline: a stored run summary that flags unintended changes to the model.

``python -m experiments.golden --update`` rewrites ``tests/golden/baseline.json`` after an
intended change to the model; say why in the commit message. ``tests/test_golden.py``
compares a fresh run with the stored one.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from model import run

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "baseline.json"
CASES = {
    "baseline_seed0": ({"n_children": 200}, 0),
    "short_cycles_exit_strategy_seed1": ({"n_children": 200, "exit_strategy": True}, 1),
    "rolling_seed2": ({"n_children": 200, "funding_scheme": "rolling"}, 2),
    "long_term_seed3": ({"n_children": 200, "funding_scheme": "long_term"}, 3),
}


def compute() -> dict[str, dict[str, float | None]]:
    """Summaries of every golden case, NaN written as None."""
    out = {}
    for name, (params, seed) in CASES.items():
        summary = run(params, seed=seed, tables=False).summary
        out[name] = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in summary.items()}
    return out


def main() -> None:
    """Print or update the golden summaries."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite the stored file")
    args = parser.parse_args()
    data = compute()
    if args.update:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(json.dumps(data, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
