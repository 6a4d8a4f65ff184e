"""The model's parameters: one typed, frozen set, the single source of truth.

Every parameter is a field of :class:`Params` declared with :func:`par`, which records
its default, unit, allowed range, plausible range (for sensitivity analysis),
description and provenance. CLI options, scenario validation, sweep ranges, dashboard
controls and the parameter table in ``docs/ODD.md`` are all generated from these
declarations; nothing else retypes a default.

Provenance strings name a section of the source report (Asquith & Turner 2008, quoted
in double quotes), an evidence figure from the model brief, or say "assumption".
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FUNDING_SCHEMES = ("fixed", "short_cycles", "long_term", "rolling", "none")
BUDGET_LINES = ("casework", "family", "community", "staff_support", "monitoring")


class ParameterError(ValueError):
    """A parameter name or value that the model cannot accept.

    The message is one line that names the parameter, the problem and the fix.
    """


@dataclass(frozen=True)
class ParamSpec:
    """The metadata of one parameter (everything except its value)."""

    name: str
    default: Any
    type: type
    unit: str
    bounds: tuple[Any, Any] | None
    plausible: tuple[Any, Any] | None
    description: str
    provenance: str
    group: str
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise ParameterError."""
        name = self.name
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ParameterError(f"{name}: expected true or false, got {value!r}")
        if self.type is str:
            if not isinstance(value, str):
                raise ParameterError(f"{name}: expected text, got {value!r}")
            if self.choices is not None and value not in self.choices:
                near = difflib.get_close_matches(value, self.choices, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ParameterError(
                    f"{name}: {value!r} is not one of {', '.join(self.choices)}{hint}"
                )
            return value
        if isinstance(value, bool):
            raise ParameterError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value) if self.type is float else int(value)
            except ValueError:
                raise ParameterError(
                    f"{name}: expected {'a number' if self.type is float else 'a whole number'}, "
                    f"got {value!r}"
                ) from None
        if self.type is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise ParameterError(f"{name}: expected a whole number, got {value!r}")
        elif self.type is float:
            if not isinstance(value, int | float):
                raise ParameterError(f"{name}: expected a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ParameterError(f"{name}: expected a finite number, got {value!r}")
        lo, hi = self.bounds
        if not lo <= value <= hi:
            raise ParameterError(
                f"{name}: {value!r} is out of range; allowed {lo} to {hi} ({self.unit})"
            )
        return value


def par(
    default: Any,
    unit: str,
    bounds: tuple[Any, Any] | None,
    plausible: tuple[Any, Any] | None,
    description: str,
    provenance: str,
    group: str,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """Declare a parameter field with its metadata."""
    meta = {
        "unit": unit,
        "bounds": bounds,
        "plausible": plausible,
        "description": description,
        "provenance": provenance,
        "group": group,
        "choices": choices,
    }
    return field(default=default, metadata=meta)


ASSUMPTION = "assumption"


@dataclass(frozen=True)
class Params:
    """All model parameters. Construct with keyword arguments; every value is validated.

    Budget shares (``budget_*``) are relative weights and are normalised to sum to 1.
    """

    # --- Time and population -------------------------------------------------------
    months: int = par(120, "months", (1, 600), (60, 180),
                      "Simulation horizon; one step is one month.",
                      "model brief, Time and space (10 years to see what follows a programme)",
                      "time and population")
    n_children: int = par(500, "children", (0, 1_000_000), (200, 1000),
                          "Children in exploitation (not yet identified) at the start.",
                          ASSUMPTION, "time and population")
    annual_inflow_share: float = par(0.10, "share of n_children per year", (0.0, 2.0), (0.0, 0.3),
                                     "New children entering exploitation each year, as a share of "
                                     "the initial number (Poisson arrivals).",
                                     '"Executive summary": continuing need; assumption for the size',
                                     "time and population")
    boy_share: float = par(0.3, "share", (0.0, 1.0), (0.1, 0.5),
                           "Share of children who are boys.",
                           '"The evidence base" (boys under-identified); assumption for the size',
                           "time and population")
    age_resilience_effect: float = par(0.02, "resilience per year of age", (0.0, 0.1), (0.0, 0.04),
                                       "How much an older age at entry adds to a child's resilience "
                                       "(ages 8-17).",
                                       '"Targeted and generalist service provision" (age matters); '
                                       "assumption for the size", "time and population")

    # --- Communities and the social network ---------------------------------------
    n_communities: int = par(8, "communities", (1, 1000), (4, 16),
                             "Communities (villages or neighbourhoods) in the district.",
                             "model brief, Time and space", "network")
    rural_share: float = par(0.5, "share", (0.0, 1.0), (0.2, 0.8),
                             "Share of communities that are rural.",
                             '"Targeted and generalist service provision" (rural vs urban differ)',
                             "network")
    households_per_child: float = par(2.0, "households per initial child", (1.0, 20.0), (1.5, 4.0),
                                      "Households in the district per initial child; most carry "
                                      "community attitudes without an exploited child of their own.",
                                      ASSUMPTION, "network")
    rural_size_ratio: float = par(0.5, "ratio", (0.1, 1.0), (0.3, 0.8),
                                  "Size of a rural community relative to an urban one.",
                                  "model brief, Time and space (rural smaller)", "network")
    rural_degree: float = par(8.0, "ties per household", (1.0, 50.0), (5.0, 12.0),
                              "Mean ties between households in a rural community.",
                              "model brief, Time and space (rural more tightly knit)", "network")
    urban_degree: float = par(4.0, "ties per household", (1.0, 50.0), (2.0, 6.0),
                              "Mean ties between households in an urban community.",
                              "model brief, Time and space (urban looser)", "network")
    leaders_per_community: int = par(3, "leaders", (0, 50), (1, 6),
                                     "Community (religious, traditional) leaders per community.",
                                     '"support and work with the local community"', "network")
    leader_reach: float = par(0.3, "share of households", (0.0, 1.0), (0.1, 0.6),
                              "Share of a community's households each leader is tied to (hubs).",
                              "Le Roux et al. 2020 (faith leaders reach the whole community); "
                              "assumption for the size", "network")
    peers_per_child: int = par(3, "peers", (0, 20), (1, 6),
                               "Peer ties per child, within the same community.",
                               '"Judging effectiveness" (friends help recovery)', "network")
    between_community_share: float = par(0.02, "share of ties", (0.0, 0.5), (0.0, 0.1),
                                         "Share of household ties that cross communities.",
                                         ASSUMPTION, "network")
    network_file: str = par("", "path", None, None,
                            "Optional edge-list (.edgelist, .txt, .csv) or GraphML (.graphml) file "
                            "with the household and leader network; empty builds one from the "
                            "parameters above.",
                            "model brief, Time and space (load a real structure)", "network")

    # --- Stigma dynamics -----------------------------------------------------------
    initial_stigma: float = par(0.6, "belief 0-1", (0.0, 1.0), (0.4, 0.8),
                                "Mean stigma (blame and shame) belief of households and leaders "
                                "at the start, in urban communities.",
                                '"Mindsets and attitudes"; Betancourt et al. 2010-2020',
                                "stigma")
    rural_stigma_offset: float = par(0.1, "belief 0-1", (-0.5, 0.5), (0.0, 0.2),
                                     "How much higher the initial stigma is in rural communities.",
                                     ASSUMPTION, "stigma")
    stigma_spread: float = par(0.15, "belief 0-1 (sd)", (0.0, 0.5), (0.05, 0.25),
                               "Spread of initial beliefs between households.",
                               ASSUMPTION, "stigma")
    stigma_influence_rate: float = par(0.1, "per month", (0.0, 1.0), (0.02, 0.3),
                                       "How fast beliefs move toward the weighted mean of "
                                       "network neighbours.",
                                       "Schmitt et al. 2020 (individual stigma tracks the "
                                       "community's average)", "stigma")
    leader_influence: float = par(5.0, "weight relative to a household", (0.0, 50.0), (1.0, 10.0),
                                  "Weight of a leader's belief in a neighbour's update "
                                  "(norm-setters).",
                                  '"support and work with the local community"; Le Roux et al. 2020',
                                  "stigma")
    stigma_threshold: float = par(0.0, "belief difference", (0.0, 0.5), (0.0, 0.2),
                                  "Threshold-like (complex contagion) change: beliefs barely move "
                                  "until the gap to neighbours exceeds this; 0 means gradual change.",
                                  ASSUMPTION, "stigma")
    norm_reversion: float = par(0.01, "per month", (0.0, 0.5), (0.0, 0.05),
                                "Pull of each belief back toward its community's traditional norm.",
                                ASSUMPTION, "stigma")
    leader_training_effect: float = par(0.1, "per month", (0.0, 1.0), (0.02, 0.2),
                                        "Monthly fall in a trained leader's stigma belief "
                                        "(proportional).",
                                        "Le Roux et al. 2020", "stigma")
    awareness_effect: float = par(0.01, "per month per community worker", (0.0, 0.2), (0.0, 0.03),
                                  "Monthly proportional fall in household stigma in a community "
                                  "per community worker there (awareness raising).",
                                  '"support and work with the local community"; assumption for '
                                  "the size", "stigma")

    # --- Identification and disclosure --------------------------------------------
    identification_rate: float = par(0.03, "per month", (0.0, 1.0), (0.01, 0.08),
                                     "Monthly chance that an exploited child is identified or "
                                     "discloses, with no stigma and no outreach.",
                                     ASSUMPTION, "identification")
    stigma_disclosure_effect: float = par(0.7, "share", (0.0, 1.0), (0.3, 0.9),
                                          "Reduction of that chance at full felt stigma.",
                                          '"Victim/survivor"; Schmitt et al. 2020 (more disclosure '
                                          "where stigma is lower)", "identification")
    outreach_effect: float = par(1.0, "relative increase", (0.0, 5.0), (0.5, 2.0),
                                 "Increase in identification while the programme is funded "
                                 "(outreach and safe channels).",
                                 ASSUMPTION, "identification")
    boys_service_access: float = par(0.4, "relative to girls", (0.0, 1.0), (0.2, 1.0),
                                     "Boys' identification chance and service fit relative to "
                                     "girls'; 1 when services are designed for boys as well.",
                                     '"The evidence base"; "Targeted and generalist service '
                                     'provision"', "identification")
    waitlist_dropout: float = par(0.1, "per month", (0.0, 1.0), (0.02, 0.2),
                                  "Monthly chance that an identified child still waiting for a "
                                  "place returns to exploitation.",
                                  ASSUMPTION, "identification")

    # --- Referral and case management ---------------------------------------------
    coordination: float = par(0.5, "0-1", (0.0, 1.0), (0.2, 0.9),
                              "Quality of multi-agency coordination and case management.",
                              '"Barriers to effective multi-disciplinary and multi-agency '
                              'working"',
                              "referral")
    referral_base: float = par(0.3, "share per month", (0.0, 1.0), (0.1, 0.6),
                               "Share of waiting children matched to a free place each month "
                               "with no coordination; coordination raises it toward 1.",
                               ASSUMPTION, "referral")
    caseload_standard: int = par(15, "children per caseworker", (1, 100), (12, 17),
                                 "Children a caseworker can carry before pressure sets in; "
                                 "referral fills places up to this.",
                                 "CWLA caseload standards (12-17 children per worker)", "referral")
    specialist_share: float = par(0.3, "share of caseworkers", (0.0, 1.0), (0.0, 1.0),
                                  "Share of caseworkers who are specialists in trauma care.",
                                  '"Targeted and generalist service provision"', "referral")

    # --- Recovery in care ----------------------------------------------------------
    entry_wellbeing: float = par(0.38, "wellbeing 0-1", (0.05, 0.95), (0.3, 0.5),
                                 "Mean wellbeing on entering the model (exploitation): about 56% "
                                 "start below 0.4. Kiss et al. measured this at entry to services; "
                                 "here it applies earlier, and exploitation_harm lowers it further "
                                 "before intake (a departure from the source, see ODD).",
                                 "Kiss et al. 2015 (depression 56%, anxiety 33%, PTSD 26%)",
                                 "recovery")
    severe_trauma_share: float = par(0.26, "share", (0.0, 1.0), (0.15, 0.4),
                                     "Share of children with severe trauma who need specialist care.",
                                     "Kiss et al. 2015 (PTSD 26%)", "recovery")
    exploitation_harm: float = par(0.005, "wellbeing per month", (0.0, 0.1), (0.0, 0.02),
                                   "Monthly loss of wellbeing while in exploitation.",
                                   ASSUMPTION, "recovery")
    recovery_rate: float = par(0.12, "per month", (0.0, 0.5), (0.06, 0.2),
                               "Monthly wellbeing gain in care at full skill, bond and fit, "
                               "as a share of the distance to full wellbeing.",
                               "Morina et al. 2016 (g 0.8-1.1 vs waitlist); Zimmerman et al. "
                               "2006 (symptoms sticky over 90 days)", "recovery")
    bond_growth: float = par(0.15, "per month", (0.0, 1.0), (0.05, 0.3),
                             "Monthly growth of the bond with the assigned worker.",
                             '"Length of funding" (continuity of contact)', "recovery")
    worker_change_setback: float = par(0.05, "wellbeing", (0.0, 0.5), (0.0, 0.1),
                                       "Loss of wellbeing when the assigned worker changes.",
                                       '"Staffing issues"; "Length of funding"', "recovery")
    generic_fit: float = par(0.5, "relative effectiveness", (0.0, 1.0), (0.3, 1.0),
                             "Effectiveness of a generic worker for a child with severe trauma.",
                             '"Targeted and generalist service provision"; Morina et al. 2016 '
                             "(active-control g 0.4-0.6)", "recovery")
    caseload_pressure: float = par(1.0, "exponent", (0.0, 5.0), (0.5, 2.0),
                                   "How steeply effectiveness falls when caseload exceeds the "
                                   "standard.", ASSUMPTION, "recovery")
    readiness_wellbeing: float = par(0.65, "wellbeing 0-1", (0.1, 1.0), (0.55, 0.75),
                                     "Wellbeing at which a child is ready to leave care.",
                                     ASSUMPTION, "recovery")
    min_months_in_care: int = par(6, "months", (0, 60), (3, 12),
                                  "Least time in care before a planned exit.",
                                  '"Recovery" (recovery takes long and unpredictable time)',
                                  "recovery")
    new_staff_skill: float = par(0.3, "skill 0-1", (0.0, 1.0), (0.1, 0.5),
                                 "Skill of a newly hired worker.", ASSUMPTION, "recovery")
    learning_rate: float = par(0.03, "per month", (0.0, 0.5), (0.01, 0.06),
                               "Monthly growth of a worker's skill with experience.",
                               '"Training and capacity-building"', "recovery")
    wellbeing_noise: float = par(0.02, "wellbeing (sd per month)", (0.0, 0.2), (0.0, 0.05),
                                 "Month-to-month random variation of wellbeing in care and after "
                                 "return: recovery is unpredictable.",
                                 '"Length of funding" (long and unpredictable periods); assumption '
                                 "for the size", "recovery")
    skill_gain: float = par(0.04, "per month", (0.0, 0.5), (0.01, 0.08),
                            "Monthly growth of a child's skills (school, livelihood) in care.",
                            '"Reintegration"', "recovery")

    # --- Family work ---------------------------------------------------------------
    counselling_effect: float = par(0.08, "per month", (0.0, 1.0), (0.02, 0.15),
                                    "Monthly rise of a counselled family's acceptance, as a share "
                                    "of the distance to full acceptance.",
                                    '"work with and support families"', "family")
    economic_support_effect: float = par(0.05, "share of the gap per month", (0.0, 0.5), (0.0, 0.1),
                                         "Monthly rise of a supported family's economic resources, "
                                         "as a share of the distance to 1.",
                                         '"work with and support families"', "family")
    dependency_growth: float = par(0.05, "per month", (0.0, 1.0), (0.0, 0.1),
                                   "Monthly growth of a supported family's dependency on support.",
                                   '"work with and support families" (risk of dependency)',
                                   "family")
    dependency_shock: float = par(0.5, "share", (0.0, 1.0), (0.0, 0.8),
                                  "Share of resources lost, times dependency, when support stops.",
                                  '"work with and support families"', "family")
    economic_share: float = par(0.5, "share of family budget", (0.0, 1.0), (0.2, 0.8),
                                "Share of family-work money spent on economic support rather than "
                                "counselling.", ASSUMPTION, "family")
    families_per_counsellor: int = par(10, "families per counsellor", (1, 100), (5, 20),
                                       "Families one psychosocial counsellor can counsel a month.",
                                       ASSUMPTION, "family")
    family_cost: float = par(100.0, "currency per family-month", (1.0, 10_000.0), (50.0, 200.0),
                             "Cost of economic support to one family for one month.", ASSUMPTION, "family")
    acceptance_drift: float = par(0.03, "per month", (0.0, 1.0), (0.01, 0.1),
                                  "Monthly drift of a family's acceptance toward one minus its own "
                                  "stigma belief.", '"Mindsets and attitudes"', "family")
    initial_resources: float = par(0.35, "resources 0-1", (0.0, 1.0), (0.2, 0.5),
                                   "Mean economic resources of families (poverty).",
                                   "Foreword (poverty undermines families); assumption", "family")

    # --- Reintegration -------------------------------------------------------------
    reintegration_adjust: float = par(0.1, "per month", (0.0, 1.0), (0.05, 0.2),
                                      "Monthly pull of a returned child's wellbeing toward what "
                                      "family, stigma, skills and resources sustain.",
                                      "Betancourt et al. 2010-2020 (acceptance and stigma predict "
                                      "outcomes)", "reintegration")
    followup_effect: float = par(0.1, "wellbeing target", (0.0, 0.5), (0.0, 0.2),
                                 "Rise in that sustainable wellbeing while a child has follow-up.",
                                 '"Reintegration"; Butterfly longitudinal research (abandoned in '
                                 'the community)', "reintegration")
    followup_caseload: int = par(30, "children per caseworker", (1, 200), (20, 50),
                                 "Returned children one caseworker can follow up, in addition to "
                                 "their caseload.", ASSUMPTION, "reintegration")
    acceptance_min: float = par(0.35, "acceptance 0-1", (0.0, 1.0), (0.2, 0.5),
                                "Least family acceptance for a return home; below it the child "
                                "waits for alternative care.", '"Reintegration"', "reintegration")
    alternative_care_rate: float = par(0.2, "per month", (0.0, 1.0), (0.05, 0.5),
                                       "Monthly chance that a ready child whose family will not "
                                       "take them back is placed in alternative (foster) care.",
                                       '"Reintegration"', "reintegration")
    alternative_care_acceptance: float = par(0.6, "acceptance 0-1", (0.0, 1.0), (0.4, 0.8),
                                             "Acceptance a child finds in alternative care.",
                                             ASSUMPTION, "reintegration")
    stable_months: int = par(12, "months", (1, 60), (6, 24),
                             "Months back in the community after which reintegration counts "
                             "as stable, checked monthly: the first month at or after this with "
                             "wellbeing at or above stable_wellbeing.",
                             '"Reintegration"', "reintegration")
    stable_wellbeing: float = par(0.5, "wellbeing 0-1", (0.0, 1.0), (0.4, 0.6),
                                  "Wellbeing needed for reintegration to count as stable.",
                                  ASSUMPTION, "reintegration")
    withdrawal_setback: float = par(0.15, "wellbeing", (0.0, 1.0), (0.0, 0.3),
                                    "Loss of wellbeing when care ends abruptly before a child is "
                                    "ready.", '"Length of funding" (worse off than if no support)',
                                    "reintegration")

    abandonment_effect: float = par(0.1, "wellbeing target", (0.0, 0.5), (0.0, 0.2),
                                    "Lasting fall in the wellbeing a child can sustain at home after "
                                    "care ended abruptly, while no one follows them up.",
                                    "Butterfly longitudinal research ('abandoned in the community'); "
                                    '"Length of funding" (worse off than if no support)',
                                    "reintegration")

    # --- Re-exploitation -----------------------------------------------------------
    reexploitation_base: float = par(0.0005, "per month", (0.0, 0.2), (0.0002, 0.001),
                                     "Monthly re-exploitation hazard of a returned child with "
                                     "every risk factor at its most favourable value.",
                                     "IOM / Jobe 2010; assumption for the size",
                                     "re-exploitation")
    poverty_risk: float = par(1.0, "log-hazard per unit", (0.0, 5.0), (0.0, 2.0),
                              "Rise of the log-hazard with poverty (1 - resources).",
                              "Foreword (poverty undermines families); assumption for the size",
                              "re-exploitation")
    stigma_risk: float = par(1.5, "log-hazard per unit", (0.0, 5.0), (0.0, 3.0),
                             "Rise of the log-hazard with felt stigma.",
                             '"Mindsets and attitudes" (re-victimisation)', "re-exploitation")
    acceptance_risk: float = par(1.0, "log-hazard per unit", (0.0, 5.0), (0.0, 2.0),
                                 "Rise of the log-hazard with low family acceptance.",
                                 '"work with and support families"', "re-exploitation")
    wellbeing_risk: float = par(1.5, "log-hazard per unit", (0.0, 5.0), (0.0, 3.0),
                                "Rise of the log-hazard with low wellbeing.", ASSUMPTION,
                                "re-exploitation")
    peer_risk: float = par(1.0, "log-hazard per unit", (0.0, 5.0), (0.0, 2.0),
                           "Rise of the log-hazard with the share of peers in exploitation.",
                           ASSUMPTION, "re-exploitation")
    early_risk_multiplier: float = par(2.0, "extra hazard", (0.0, 10.0), (0.5, 4.0),
                                       "Extra relative hazard just after exit from care or "
                                       "exploitation, decaying with early_risk_months.",
                                       "IOM / Jobe 2010 (most re-trafficking within two years)",
                                       "re-exploitation")
    early_risk_months: float = par(12.0, "months", (1.0, 60.0), (6.0, 24.0),
                                   "Decay time of the early extra hazard.", "IOM / Jobe 2010",
                                   "re-exploitation")
    followup_protection: float = par(0.5, "share", (0.0, 1.0), (0.2, 0.8),
                                     "Reduction of the hazard while a child has follow-up.",
                                     '"Reintegration"', "re-exploitation")
    committee_protection: float = par(0.3, "share", (0.0, 1.0), (0.0, 0.6),
                                      "Reduction of the hazard while a community care committee "
                                      "(rather than staff) follows the child up.",
                                      '"support and work with the local community"', "re-exploitation")
    revictimisation_harm: float = par(0.1, "wellbeing", (0.0, 1.0), (0.0, 0.2),
                                      "Loss of wellbeing when a child is exploited again.",
                                      '"Victim/survivor" (re-victimisation); assumption for the size',
                                      "re-exploitation")
    stable_risk_factor: float = par(0.3, "relative hazard", (0.0, 1.0), (0.1, 0.6),
                                    "Hazard of a stably reintegrated child relative to a "
                                    "returning one.", ASSUMPTION, "re-exploitation")

    # --- Unassisted recovery -------------------------------------------------------
    unassisted_recovery_rate: float = par(0.004, "per month", (0.0, 0.2), (0.0, 0.01),
                                          "Monthly chance that an exploited child of average "
                                          "resilience leaves exploitation without services.",
                                          '"Judging effectiveness" (many recover without services)',
                                          "unassisted recovery")
    peer_support_effect: float = par(1.0, "relative increase", (0.0, 5.0), (0.0, 2.0),
                                     "Increase of that chance with the share of peers back in "
                                     "the community.", '"Judging effectiveness" (friends, school)',
                                     "unassisted recovery")

    # --- Staffing ------------------------------------------------------------------
    salary: float = par(1000.0, "currency per worker-month", (1.0, 100_000.0), (600.0, 1500.0),
                        "Cost of one worker for one month, overheads included.", ASSUMPTION,
                        "staffing")
    base_turnover: float = par(0.015, "per month", (0.0, 0.5), (0.01, 0.03),
                               "Monthly chance that a worker with no burn-out leaves.",
                               "Casey Family Programs; Strolin-Goltzman et al. 2010 (20-40% a "
                               "year, ~30% typical)", "staffing")
    burnout_turnover: float = par(2.0, "relative increase", (0.0, 10.0), (0.5, 4.0),
                                  "Increase in leaving at full burn-out.",
                                  '"Staffing issues" (burn-out)', "staffing")
    burnout_rate: float = par(0.1, "per month per unit excess caseload", (0.0, 1.0), (0.02, 0.2),
                              "Rise of burn-out with caseload above the standard.",
                              "meta-analysis 2024 (burn-out 20%, exhaustion ~50%)", "staffing")
    base_stress: float = par(0.02, "per month", (0.0, 0.5), (0.0, 0.05),
                             "Rise of burn-out from the work itself.",
                             '"Staffing issues"', "staffing")
    burnout_recovery: float = par(0.03, "per month", (0.0, 1.0), (0.01, 0.1),
                                  "Monthly fall of burn-out without staff support (share).",
                                  ASSUMPTION, "staffing")
    support_cost: float = par(150.0, "currency per worker-month", (1.0, 10_000.0), (50.0, 300.0),
                              "Staff-support money per worker for full supervision and support.",
                              ASSUMPTION, "staffing")
    support_effect: float = par(0.5, "share", (0.0, 1.0), (0.2, 0.8),
                                "At full support: reduction of leaving, and extra monthly "
                                "recovery from burn-out (x 0.1).",
                                '"Staffing issues" (support and supervision help retention)',
                                "staffing")
    contract_insecurity: float = par(1.0, "relative increase", (0.0, 10.0), (0.0, 3.0),
                                     "Increase in leaving in the last insecure_months of a grant "
                                     "whose renewal is not certain.",
                                     '"Staffing issues" (short contracts, no career path)',
                                     "staffing")
    insecure_months: int = par(6, "months", (0, 24), (3, 12),
                               "How long before a grant's end staff feel contract insecurity.",
                               ASSUMPTION, "staffing")
    hiring_lag: int = par(3, "months", (0, 24), (1, 6),
                          "Months to fill a vacancy.", '"Staffing issues"', "staffing")

    # --- Funding -------------------------------------------------------------------
    funding_scheme: str = par("short_cycles", "scheme", None, None,
                              "How the programme is funded: fixed (one grant), short_cycles "
                              "(grants with gaps, renewal uncertain), long_term (one long grant), "
                              "rolling (renewed before the end, no gaps), none.",
                              '"Funding issues"; "Length of funding"; Development Initiatives '
                              "2020 (multi-year funding 8-13%)", "funding",
                              choices=FUNDING_SCHEMES)
    monthly_budget: float = par(30_000.0, "currency per month", (0.0, 1e9), (15_000.0, 60_000.0),
                                "Programme budget per funded month.", ASSUMPTION, "funding")
    grant_months: int = par(12, "months", (1, 600), (6, 36),
                            "Length of one grant (fixed, short_cycles, rolling).",
                            "Development Initiatives 2020 ('multi-year' often 12-24 months)",
                            "funding")
    long_grant_months: int = par(60, "months", (1, 600), (36, 120),
                                 "Length of the single long_term grant.", '"Length of funding"',
                                 "funding")
    gap_months: int = par(3, "months", (0, 36), (0, 6),
                          "Months without funding between short-cycle grants; contracts end.",
                          '"Length of funding"', "funding")
    renewal_probability: float = par(0.8, "probability", (0.0, 1.0), (0.5, 1.0),
                                     "Chance that a short-cycle grant is renewed after a gap "
                                     "(otherwise another gap follows).", '"Length of funding"',
                                     "funding")
    exit_strategy: bool = par(False, "yes/no", None, None,
                              "At a funding gap or end, hand children in care to community care "
                              "committees with spare capacity instead of exiting them abruptly.",
                              '"support and work with the local community"; "Staffing issues" '
                              '("parachuted in")', "funding")
    budget_casework: float = par(0.6, "relative weight", (0.0, 1.0), (0.3, 0.8),
                                 "Budget weight for caseworkers (recovery care, follow-up).",
                                 '"Funding issues"', "funding")
    budget_family: float = par(0.15, "relative weight", (0.0, 1.0), (0.0, 0.4),
                               "Budget weight for family work (counselling, economic support).",
                               '"work with and support families"', "funding")
    budget_community: float = par(0.1, "relative weight", (0.0, 1.0), (0.0, 0.4),
                                  "Budget weight for the community programme (community workers: "
                                  "leader training, committees, awareness).",
                                  '"Conclusions" (unlock community capacity)', "funding")
    budget_staff_support: float = par(0.05, "relative weight", (0.0, 1.0), (0.0, 0.2),
                                      "Budget weight for supervision and support of staff.",
                                      '"Staffing issues"', "funding")
    budget_monitoring: float = par(0.1, "relative weight", (0.0, 1.0), (0.0, 0.2),
                                   "Budget weight for monitoring, evaluation and case management "
                                   "systems.", '"The evidence base"', "funding")
    monitoring_effect: float = par(1.0, "coordination per budget share", (0.0, 5.0), (0.0, 2.0),
                                   "Rise of effective coordination per unit budget share spent on "
                                   "monitoring (capped at 1).", ASSUMPTION, "funding")

    # --- Community capacity --------------------------------------------------------
    leader_training_rate: float = par(0.1, "per month per community worker", (0.0, 1.0),
                                      (0.02, 0.3),
                                      "Monthly chance that an untrained leader is trained, per "
                                      "community worker in the community.",
                                      '"support and work with the local community"', "community")
    volunteer_recruitment: float = par(1.0, "households per month per worker", (0.0, 20.0),
                                       (0.2, 3.0),
                                       "Households recruited to the community care committee per "
                                       "community worker per month.",
                                       '"support and work with the local community" (care '
                                       "committees)", "community")
    committee_children_per_member: float = par(2.0, "children per member", (0.0, 20.0), (1.0, 4.0),
                                               "Returned children one committee member can follow "
                                               "up.", ASSUMPTION, "community")
    capacity_decay: float = par(0.02, "per month", (0.0, 1.0), (0.005, 0.05),
                                "Monthly chance that a trained leader or committee member becomes "
                                "inactive when no community worker supports the community.",
                                '"support and work with the local community" (slow decay)',
                                "community")

    def __post_init__(self) -> None:
        """Validate every field and the cross-field constraints."""
        for spec in SPECS.values():
            value = spec.check(getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)
        if self.network_file and not Path(self.network_file).is_file():
            raise ParameterError(
                f"network_file: {self.network_file} does not exist; give the path of an "
                "edge-list or GraphML file, or leave it empty")
        if sum(getattr(self, f"budget_{line}") for line in BUDGET_LINES) <= 0:
            raise ParameterError(
                "budget_*: all budget weights are zero; give at least one a positive weight"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "") -> Params:
        """Build from a mapping, rejecting unknown names with the nearest valid ones.

        Args:
            values: parameter names and values.
            origin: where the values came from (a file name), used in messages.
        """
        prefix = f"{origin}: " if origin else ""
        for name in values:
            if name not in SPECS:
                raise ParameterError(prefix + unknown_message(name))
        try:
            return cls(**values)
        except ParameterError as exc:
            raise ParameterError(prefix + str(exc)) from None

    def replace(self, **changes: Any) -> Params:
        """Return a copy with some values changed (validated)."""
        return Params.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """All values by name, in declaration order."""
        return {name: getattr(self, name) for name in SPECS}

    def budget_shares(self) -> dict[str, float]:
        """Budget weights normalised to shares that sum to 1."""
        weights = {line: getattr(self, f"budget_{line}") for line in BUDGET_LINES}
        total = sum(weights.values())
        return {line: w / total for line, w in weights.items()}


def unknown_message(name: str) -> str:
    """The one-line message for an unknown parameter name."""
    near = difflib.get_close_matches(name, list(SPECS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return (f"unknown parameter {name!r}{hint} "
            "(run 'reintegration params' for the full list)")


def _specs() -> dict[str, ParamSpec]:
    specs = {}
    for f in dataclasses.fields(Params):
        m = f.metadata
        type_ = {"int": int, "float": float, "str": str, "bool": bool}[f.type]
        specs[f.name] = ParamSpec(
            name=f.name, default=f.default, type=type_, unit=m["unit"], bounds=m["bounds"],
            plausible=m["plausible"], description=m["description"],
            provenance=m["provenance"], group=m["group"], choices=m["choices"],
        )
    return specs


SPECS: dict[str, ParamSpec] = _specs()
DEFAULTS: dict[str, Any] = {name: spec.default for name, spec in SPECS.items()}


def parameter_table(markdown: bool = True) -> str:
    """The parameter table (name, default, unit, range, plausible range, provenance)."""
    rows = []
    for s in SPECS.values():
        rng = f"{s.bounds[0]} – {s.bounds[1]}" if s.bounds else (
            " / ".join(s.choices) if s.choices else "")
        plaus = f"{s.plausible[0]} – {s.plausible[1]}" if s.plausible else ""
        rows.append((s.name, repr(s.default) if isinstance(s.default, str) else str(s.default),
                     s.unit, rng, plaus, s.description, s.provenance))
    if markdown:
        head = ("| name | default | unit | allowed | plausible | description | provenance |\n"
                "|---|---|---|---|---|---|---|\n")
        return head + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
    return "\n".join("\t".join(r) for r in rows) + "\n"
