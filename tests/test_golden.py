"""A fresh run must reproduce the stored golden summaries exactly (within float noise).

After an intended model change, run ``python -m experiments.golden --update`` and commit
the new file with the reason.
"""

import json
import math

import pytest

from experiments.golden import CASES, GOLDEN, compute


@pytest.fixture(scope="module")
def fresh():
    return compute()


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_summary_unchanged(case, fresh):
    stored = json.loads(GOLDEN.read_text())[case]
    now = fresh[case]
    assert sorted(now) == sorted(stored), "summary keys changed; update the golden file"
    for key, want in stored.items():
        got = now[key]
        if want is None:
            assert got is None, f"{case}.{key}: expected empty, got {got}"
        else:
            assert got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
                f"{case}.{key}: {got} != stored {want}; if the model change is intended, run "
                "python -m experiments.golden --update")
