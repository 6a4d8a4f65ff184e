"""What a run reports: the monthly series (with labels and units) and the run summary.

The definitions here are the ones documented in ``docs/ODD.md`` ("Outputs").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import kernels
from .agents import CASEWORKER, REINTEGRATED, STAGES

if TYPE_CHECKING:
    from .reintegration import ReintegrationModel

SUSTAINABILITY_MONTHS = 24
STAGE_LABELS = {"exploited": "in exploitation", "identified": "identified, waiting for a place",
                "in_care": "in care", "reintegrating": "reintegrating",
                "reintegrated": "stably reintegrated", "re_exploited": "re-exploited"}
CHECKPOINTS = (36, 60)


def _mean(x: np.ndarray) -> float:
    """``float(x.mean())`` (the same pairwise sum) without ``ndarray.mean``'s Python layer."""
    return float(np.add.reduce(x) / len(x))


_COUNT_KEYS = tuple(f"n_{s}" for s in STAGES)
_WELLBEING_KEYS = tuple(f"wellbeing_{s}" for s in STAGES)


def month_stats(m: ReintegrationModel) -> dict[str, float]:
    """Every monthly series value for the month just simulated, computed in one pass."""
    ch, st = m.children, m.staff
    n_stages = len(STAGES)
    counts, wsum, worse = kernels.children_stats(ch.stage, ch.wellbeing, ch.withdrawn,
                                                 ch.intake_wellbeing, n_stages)
    out: dict[str, float] = dict(zip(_COUNT_KEYS, counts.tolist(), strict=True))
    for key, total, count in zip(_WELLBEING_KEYS, wsum.tolist(), counts.tolist(), strict=True):
        out[key] = total / count if count else float("nan")
    for key in ("new_children", "identified", "admitted", "re_exploited"):
        out[key] = m.now[key]
    out["premature_exits"] = m.premature_exits
    out["handed_to_community"] = m.handed_over
    out["worse_off_than_intake"] = int(worse)
    out["unassisted_recoveries"] = m.unassisted_recoveries
    out["mean_stigma"] = _mean(m.beliefs())
    out["mean_acceptance"] = (_mean(m.families.acceptance[ch.household])
                              if len(ch) else float("nan"))
    employed = ~st.left
    caseworkers = employed & (st.role == CASEWORKER)
    out["staff_employed"] = np.count_nonzero(employed)
    out["caseworkers"] = np.count_nonzero(caseworkers)
    out["vacancies"] = (int(sum(m.posts().values()) - out["staff_employed"]) if m.funded else 0)
    out["resignations"] = m.now["resignations"]
    out["contracts_ended"] = m.now["contracts_ended"]
    out["caseload_per_caseworker"] = (_mean(st.caseload[caseworkers])
                                      if out["caseworkers"] else float("nan"))
    out["mean_burnout"] = _mean(st.burnout[employed]) if out["staff_employed"] else float("nan")
    out["funded"] = int(m.funded)
    out["budget"] = m.budget
    out["spend"] = m.spend
    out["community_capacity"] = float(np.add.reduce(m.committee_capacity()))
    out["trained_leaders"] = np.count_nonzero(m.leaders.trained) if len(m.leaders) else 0
    for key in ("followed_up", "committee_followed_up", "families_counselled",
                "families_supported"):
        out[key] = m.now[key]
    return out


TIMESERIES: dict[str, tuple[str, str]] = {
    **{f"n_{s}": (f"Children {STAGE_LABELS[s]} (stock)", "children") for s in STAGES},
    **{f"wellbeing_{s}": (f"Mean wellbeing, {STAGE_LABELS[s]}", "wellbeing 0-1")
       for s in STAGES},
    "new_children": ("Children entering exploitation", "children/month"),
    "identified": ("Children newly identified", "children/month"),
    "admitted": ("Children admitted to care", "children/month"),
    "re_exploited": ("Children re-exploited", "children/month"),
    "premature_exits": ("Premature exits so far", "children"),
    "handed_to_community": ("Handed to community structures so far", "children"),
    "worse_off_than_intake": ("Withdrawn children now worse off than at intake", "children"),
    "unassisted_recoveries": ("Unassisted recoveries so far", "children"),
    "mean_stigma": ("Mean community stigma", "belief 0-1"),
    "mean_acceptance": ("Mean family acceptance (per child's family)", "acceptance 0-1"),
    "staff_employed": ("Staff employed", "workers"),
    "caseworkers": ("Caseworkers employed", "workers"),
    "vacancies": ("Vacant funded posts", "posts"),
    "resignations": ("Staff leaving (turnover)", "workers/month"),
    "contracts_ended": ("Contracts ended by funding", "workers/month"),
    "caseload_per_caseworker": ("Caseload per caseworker", "children/worker"),
    "mean_burnout": ("Mean staff burn-out", "burn-out 0-1"),
    "funded": ("Programme funded", "yes=1"),
    "budget": ("Budget available", "currency/month"),
    "spend": ("Spend", "currency/month"),
    "community_capacity": ("Care-committee capacity", "children"),
    "trained_leaders": ("Trained leaders", "leaders"),
    "followed_up": ("Returned children followed up by staff", "children"),
    "committee_followed_up": ("Returned children followed up by committees", "children"),
    "families_counselled": ("Families counselled", "families"),
    "families_supported": ("Families given economic support", "families"),
}
"""Monthly series: column name -> (label, unit); values come from ``month_stats``."""


SUMMARY_DEFINITIONS: dict[str, str] = {
    "children_total": "Children who entered the simulation (initial plus inflow).",
    "stable_reintegration_rate": "Share of all children who entered who are stably "
    "reintegrated (stage `reintegrated`) at the horizon.",
    "stable_reintegration_rate_assisted": "The same share among children who were ever in care.",
    **{f"stable_reintegration_rate_m{c}": f"Share of children who entered by month {c} who "
       f"are stably reintegrated at month {c} (empty if the horizon is shorter)."
       for c in CHECKPOINTS},
    "re_exploitation_per_100_child_years": "Re-exploitation events per 100 child-years spent "
    "back in the community (stages `reintegrating` and `reintegrated`, counted at month ends).",
    "median_months_to_reintegration": "Median, over children who became stably reintegrated, "
    "of months from entering exploitation to the first stable reintegration (empty if none).",
    "premature_exits": "Exits from care that ended abruptly before the child was ready because "
    "funding stopped (events with cause `funding_gap` or `funding_end`; a child exited at two "
    "gaps counts twice).",
    "handed_to_community": "Exits from care to community care committees when funding stopped "
    "(exit strategy; events with cause `handed_to_community`).",
    "worse_off_after_withdrawal_share": "Among children whose care ended before readiness "
    "(premature exit or hand-over), the share whose final wellbeing is below their wellbeing "
    "at intake to care (empty if none).",
    "unmet_need_share": "Share of all children who entered who were never in care (never "
    "identified, or identified but never given a place).",
    "never_identified_share": "Share of all children who entered who were never identified.",
    "unassisted_recoveries": "Transitions out of exploitation without services (cause "
    "`unassisted`).",
    "total_spend": "Money spent over the run (salaries, staff support, monitoring, economic "
    "support to families).",
    "cost_per_stable_reintegration": "total_spend divided by the number of children ever in "
    "care who reached stable reintegration during the run (empty if none).",
    "staff_turnover_annual": "Resignations (not contract ends) per worker-year employed.",
    "contracts_ended": "Contracts ended because funding stopped.",
    "mean_community_stigma_end": "Mean stigma belief of all households and leaders at the "
    "horizon.",
    "sustained_after_funding_end": f"Among children back in the community when funding ended "
    f"for the last time, the share not re-exploited in the {SUSTAINABILITY_MONTHS} months "
    "after (empty if funding never ends, or ends less than 24 months before the horizon).",
    "mean_wellbeing_end": "Mean wellbeing of all children at the horizon.",
}
"""Each summary key with its exact definition."""


SUMMARY_LABELS: dict[str, tuple[str, str]] = {
    "children_total": ("Children in the simulation", "children"),
    "stable_reintegration_rate": ("Stably reintegrated at the horizon", "share of children"),
    "stable_reintegration_rate_assisted": ("Stably reintegrated, children ever in care",
                                           "share of children ever in care"),
    **{f"stable_reintegration_rate_m{c}": (f"Stably reintegrated at month {c}",
                                           "share of children") for c in CHECKPOINTS},
    "re_exploitation_per_100_child_years": ("Re-exploitation", "events per 100 child-years"),
    "median_months_to_reintegration": ("Median time to stable reintegration", "months"),
    "premature_exits": ("Premature exits (funding stopped)", "exits"),
    "handed_to_community": ("Handed to community care committees", "exits"),
    "worse_off_after_withdrawal_share": ("Worse off than at intake after withdrawal",
                                         "share of withdrawn children"),
    "unmet_need_share": ("Never in care (unmet need)", "share of children"),
    "never_identified_share": ("Never identified", "share of children"),
    "unassisted_recoveries": ("Unassisted recoveries", "children"),
    "total_spend": ("Total spend", "currency"),
    "cost_per_stable_reintegration": ("Cost per stable reintegration", "currency per child"),
    "staff_turnover_annual": ("Staff turnover", "resignations per worker-year"),
    "contracts_ended": ("Contracts ended by funding stops", "contracts"),
    "mean_community_stigma_end": ("Community stigma at the horizon", "belief 0-1"),
    "sustained_after_funding_end": ("Not re-exploited 24 months after funding ended",
                                    "share of children"),
    "mean_wellbeing_end": ("Mean wellbeing at the horizon", "wellbeing 0-1"),
}
"""Each summary key's label and unit, for tables and plots."""

KEY_SUMMARY = ("stable_reintegration_rate", "premature_exits", "worse_off_after_withdrawal_share",
               "unmet_need_share", "re_exploitation_per_100_child_years",
               "cost_per_stable_reintegration", "staff_turnover_annual",
               "mean_community_stigma_end", "sustained_after_funding_end")
"""The summary metrics a comparison shows first."""


def _nan_if_empty(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def run_summary(model: ReintegrationModel) -> dict[str, float]:
    """Compute the run summary; keys and definitions are in ``SUMMARY_DEFINITIONS``."""
    ch = model.children
    ts = model.datacollector.model_vars
    n = len(ch)
    stage = ch.stage
    out: dict[str, float] = {"children_total": n}
    out["stable_reintegration_rate"] = _nan_if_empty((stage == REINTEGRATED).sum(), n)
    assisted = ch.ever_in_care
    out["stable_reintegration_rate_assisted"] = _nan_if_empty(
        (assisted & (stage == REINTEGRATED)).sum(), assisted.sum())
    months_run = len(ts.get("n_reintegrated", []))
    for c in CHECKPOINTS:
        if months_run >= c:
            entered = int((ch.entry_month < c).sum())
            out[f"stable_reintegration_rate_m{c}"] = _nan_if_empty(
                ts["n_reintegrated"][c - 1], entered)
        else:
            out[f"stable_reintegration_rate_m{c}"] = float("nan")
    back_months = (np.sum(ts.get("n_reintegrating", [0])) + np.sum(ts.get("n_reintegrated", [0])))
    events = int(np.sum(ts.get("re_exploited", [0])))
    out["re_exploitation_per_100_child_years"] = _nan_if_empty(100.0 * events, back_months / 12.0)
    reached = ch.reintegrated_month >= 0
    out["median_months_to_reintegration"] = (
        float(np.median(ch.reintegrated_month[reached] - ch.entry_month[reached]))
        if reached.any() else float("nan"))
    out["premature_exits"] = model.premature_exits
    out["handed_to_community"] = model.handed_over
    w = ch.withdrawn
    out["worse_off_after_withdrawal_share"] = _nan_if_empty(
        (w & (ch.wellbeing < ch.intake_wellbeing)).sum(), w.sum())
    out["unmet_need_share"] = _nan_if_empty((~assisted).sum(), n)
    out["never_identified_share"] = _nan_if_empty((ch.first_identified < 0).sum(), n)
    out["unassisted_recoveries"] = model.unassisted_recoveries
    out["total_spend"] = model.total_spend
    out["cost_per_stable_reintegration"] = _nan_if_empty(model.total_spend,
                                                         (assisted & reached).sum())
    worker_months = float(np.sum(ts.get("staff_employed", [0])))
    out["staff_turnover_annual"] = _nan_if_empty(model.resignations, worker_months / 12.0)
    out["contracts_ended"] = int(np.sum(ts.get("contracts_ended", [0])))
    out["mean_community_stigma_end"] = float(model.beliefs().mean())
    out["sustained_after_funding_end"] = _sustained(model)
    out["mean_wellbeing_end"] = float(ch.wellbeing.mean()) if n else float("nan")
    return out


def _sustained(model: ReintegrationModel) -> float:
    end = model.schedule.last_end()
    returned = getattr(model, "returned_at_funding_end", None)
    if end is None or returned is None or end + SUSTAINABILITY_MONTHS > model.month - 1:
        return float("nan")
    if len(returned) == 0:
        return float("nan")
    ev = model.events()
    window = ev[(ev["cause"] == "re_exploited") & (ev["month"] > end)
                & (ev["month"] <= end + SUSTAINABILITY_MONTHS)]
    hit = np.isin(returned, window["child_id"].to_numpy())
    return float(1.0 - hit.mean())


__all__ = ["TIMESERIES", "SUMMARY_DEFINITIONS", "SUMMARY_LABELS", "KEY_SUMMARY", "month_stats",
           "run_summary"]
