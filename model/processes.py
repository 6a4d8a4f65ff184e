"""The monthly processes, one function each, called by ``ReintegrationModel.step``.

Each function takes the model and its own random stream, reads the parameters it
names, and updates whole arrays of agent state at once. The order in which ``step``
calls them is fixed and documented there and in ``docs/ODD.md`` ("Process overview and
scheduling"). Every mechanism can be weakened or switched off through a parameter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import kernels
from .agents import (
    CASEWORKER,
    COMMUNITY_WORKER,
    COUNSELLOR,
    EXPLOITED,
    IDENTIFIED,
    IN_CARE,
    RE_EXPLOITED,
    REINTEGRATED,
    REINTEGRATING,
)

if TYPE_CHECKING:
    from .reintegration import ReintegrationModel

RETURNED = (REINTEGRATING, REINTEGRATED)


# --- 0. Inflow -------------------------------------------------------------------------
def inflow(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """New children enter exploitation: Poisson(annual_inflow_share * n_children / 12)."""
    p = model.params
    k = int(rng.poisson(p.annual_inflow_share * p.n_children / 12.0))
    if k:
        model.add_children(k, rng)
        model.now["new_children"] = k


# --- 1. Funding ------------------------------------------------------------------------
def funding(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Apply the funding schedule: set this month's budget; at a gap or end, withdraw.

    When funding stops, every contract ends (counted as ``contracts_ended``, not as
    turnover) and children in care leave care before they are ready; all of them are
    marked as withdrawn before readiness. With ``exit_strategy``, children are handed to
    community care committees while those have spare capacity (cause
    ``handed_to_community``, no setback); the rest exit abruptly (cause ``funding_gap``
    if a later grant follows, else ``funding_end``) and lose ``withdrawal_setback`` of
    wellbeing. Children waiting for a place stay on the waiting list.
    """
    m, p = model.month, model.params
    funded = bool(model.schedule.funded[m]) if m < len(model.schedule.funded) else False
    was_funded = model.funded
    model.funded = funded
    model.budget = p.monthly_budget if funded else 0.0
    if was_funded and not funded:
        later = model.schedule.funded[m:].any()
        end_contracts(model)
        withdraw_children(model, "funding_gap" if later else "funding_end", rng)


def end_contracts(model: ReintegrationModel) -> None:
    """End every employed worker's contract and cancel pending hires."""
    st = model.staff
    employed = ~st.left
    model.now["contracts_ended"] += int(employed.sum())
    st.left[employed] = True
    st.caseload[:] = 0
    model.pending_hires.clear()
    ch = model.children
    ch.caseworker[:] = -1


def withdraw_children(model: ReintegrationModel, cause: str, rng: np.random.Generator) -> None:
    """Move all children in care out of the programme before readiness."""
    p, ch = model.params, model.children
    in_care = np.flatnonzero(ch.stage == IN_CARE)
    if len(in_care) == 0:
        return
    handed = np.zeros(len(in_care), bool)
    if p.exit_strategy:
        spare = model.committee_capacity() - model.committee_load()
        com = ch.community[in_care]
        order = rng.permutation(len(in_care))
        for i in order.tolist():
            c = com[i]
            if spare[c] >= 1:
                spare[c] -= 1
                handed[i] = True
    abrupt = in_care[~handed]
    gentle = in_care[handed]
    ch.withdrawn[in_care] = True
    ch.handed[gentle] = True
    ch.wellbeing[abrupt] = np.clip(ch.wellbeing[abrupt] - p.withdrawal_setback, 0, 1)
    model.place_children(in_care, rng)
    model.transition(abrupt, REINTEGRATING, cause)
    model.transition(gentle, REINTEGRATING, "handed_to_community")
    model.premature_exits += len(abrupt)
    model.handed_over += len(gentle)


# --- 2. Staffing -----------------------------------------------------------------------
def staffing(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Posts, hiring lag, skill, burn-out and turnover of professionals.

    Posts per role come from the budget split and ``salary``. A vacancy is filled
    ``hiring_lag`` months after it opens by a new worker of skill ``new_staff_skill``.
    Burn-out rises by ``base_stress`` and by ``burnout_rate`` per unit of caseload above
    ``caseload_standard``, and falls by ``burnout_recovery`` (more with staff support).
    The monthly chance of leaving is ``base_turnover`` x (1 + ``burnout_turnover`` x
    burn-out) x (1 + ``contract_insecurity`` near an uncertain grant end) x (1 -
    ``support_effect`` x support level). Children of a leaver lose their worker (a
    caseworker change) and are reassigned by ``referral``.
    """
    p, st, m = model.params, model.staff, model.month
    if model.funded:
        posts = model.posts()
        hired_now = [h for h in model.pending_hires if h[1] <= m]
        model.pending_hires = [h for h in model.pending_hires if h[1] > m]
        for role, _ in hired_now:
            model.hire(role, p.new_staff_skill, rng)
        employed_by_role = np.bincount(st.role[~st.left], minlength=3)
        for role in (CASEWORKER, COUNSELLOR, COMMUNITY_WORKER):
            have = int(employed_by_role[role])
            pending = sum(1 for r, _ in model.pending_hires if r == role)
            for _ in range(max(0, posts[role] - have - pending)):
                model.pending_hires.append((role, m + p.hiring_lag))
        # A hire with no lag starts at once.
        ready = [h for h in model.pending_hires if h[1] <= m]
        model.pending_hires = [h for h in model.pending_hires if h[1] > m]
        for role, _ in ready:
            model.hire(role, p.new_staff_skill, rng)
    employed = (~st.left).nonzero()[0]
    if len(employed) == 0:
        return
    insecure = bool(model.schedule.insecure[m]) if m < len(model.schedule.insecure) else False
    leave = kernels.staff_month(
        employed, rng.random(len(employed)), st.role, st.caseload, st.burnout, st.skill,
        st.months_employed, CASEWORKER, p.caseload_standard,
        np.array([p.base_stress, p.burnout_rate, p.burnout_recovery, p.support_effect,
                  model.support_level(), p.learning_rate, p.base_turnover, p.burnout_turnover,
                  p.contract_insecurity, float(insecure)]))
    if len(leave):
        st.left[leave] = True
        model.now["resignations"] += len(leave)
        model.resignations += len(leave)
        left_now = np.zeros(len(st) + 1, bool)  # the extra last entry is for "no worker" (-1)
        left_now[leave] = True
        orphaned = left_now[model.children.caseworker].nonzero()[0]
        model.lose_worker(orphaned)
        st.caseload[leave] = 0


# --- 3. Community capacity -------------------------------------------------------------
def community_capacity(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Community workers train leaders and recruit care-committee volunteers; decay.

    In each community, an untrained leader is trained with chance
    1 - (1 - ``leader_training_rate``)^(community workers there); trained leaders sit on
    the care committee. Poisson(``volunteer_recruitment`` x workers) households join the
    committee. Where no community worker is active, each trained leader and member
    becomes inactive with chance ``capacity_decay`` a month. Source: "support and work
    with the local community".
    """
    p, net, lead, fam = model.params, model.network, model.leaders, model.families
    workers = model.community_workers()
    if len(lead):
        u_train, u_lapse = rng.random(len(lead)), rng.random(len(lead))
        kernels.leader_training(u_train, u_lapse, lead.trained, lead.committee,
                                net.community[net.n_households:], workers,
                                p.leader_training_rate, p.capacity_decay)
    for c in (workers > 0).nonzero()[0].tolist():
        k = int(rng.poisson(p.volunteer_recruitment * workers[c]))
        if k:
            members = net.households_by_community[c]
            free = members[~fam.committee[members]]
            if len(free):
                fam.committee[rng.choice(free, size=min(k, len(free)), replace=False)] = True
    kernels.committee_lapse(rng.random(len(fam)), fam.committee, net.community, workers,
                            p.capacity_decay)


# --- 4. Stigma dynamics ----------------------------------------------------------------
def stigma_dynamics(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Beliefs move toward neighbours' (leaders weigh more), trained leaders and awareness.

    With ``s`` a belief and ``t`` the influence-weighted mean belief of its network
    neighbours, ``s += stigma_influence_rate * h(t - s) * (t - s)``, where
    ``h(d) = d^4 / (d^4 + stigma_threshold^4)`` (``h = 1`` when the threshold is 0:
    gradual change; a positive threshold gives threshold-like, tipping change). Then
    ``s += norm_reversion * (s0 - s)`` toward the community's traditional norm, trained
    leaders' beliefs fall by ``leader_training_effect * s`` and households' by
    ``awareness_effect * s`` per community worker in their community. Source: "Mindsets
    and attitudes"; Schmitt et al. 2020; Le Roux et al. 2020.
    """
    p, net = model.params, model.network
    influence, has_ties = model.influence_matrix()
    kernels.stigma_step(
        model.families.stigma, model.leaders.stigma, influence.indptr, influence.indices,
        influence.data, has_ties, model.belief_norm, model.leaders.trained,
        model.community_workers(), net.community,
        np.array([p.stigma_influence_rate, p.stigma_threshold, p.norm_reversion,
                  p.leader_training_effect, p.awareness_effect], float))


# --- 5. Family work --------------------------------------------------------------------
def family_work(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Counselling raises acceptance; economic support raises resources and dependency.

    Families of children in care come first, then families of returned children still
    reintegrating, while counsellor places (``families_per_counsellor`` each) and
    economic-support places (family budget x ``economic_share`` / ``family_cost``) last.
    Counselled: acceptance += ``counselling_effect`` x (1 - acceptance), stigma belief
    falls by the same share. Supported: resources += ``economic_support_effect`` x
    (1 - resources), dependency += ``dependency_growth`` x (1 - dependency). When support
    stops, resources fall by ``dependency_shock`` x dependency x resources and dependency
    halves each unsupported month. All families' acceptance drifts toward one minus their
    stigma belief at ``acceptance_drift``. Source: "work with and support families".
    """
    p, fam, ch = model.params, model.families, model.children
    was_supported = fam.supported.copy()
    fam.counselled[:] = False
    fam.supported[:] = False
    if model.funded:
        in_care, back = kernels.families_to_serve(ch.stage, ch.household, ch.ever_in_care,
                                                  len(fam), IN_CARE, REINTEGRATING)
        queue = np.concatenate([rng.permutation(in_care), rng.permutation(back)])
        n_counsel = model.counsellors() * p.families_per_counsellor
        n_support = int(model.budget * model.shares["family"] * p.economic_share // p.family_cost)
        fam.counselled[queue[:n_counsel]] = True
        fam.supported[queue[:n_support]] = True
        model.now["families_counselled"] = int(min(n_counsel, len(queue)))
        model.now["families_supported"] = int(min(n_support, len(queue)))
        model.spend += min(n_support, len(queue)) * p.family_cost
    kernels.family_step(
        fam.counselled, fam.supported, was_supported, fam.acceptance, fam.stigma, fam.resources,
        fam.dependency, np.array([p.counselling_effect, p.economic_support_effect,
                                  p.dependency_growth, p.dependency_shock, p.acceptance_drift],
                                 float))


# --- 6. Identification and disclosure --------------------------------------------------
def identification(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Exploited children are identified or disclose; waiting children may drop out.

    Monthly chance: ``identification_rate`` x (1 - ``stigma_disclosure_effect`` x felt
    stigma) x (1 + ``outreach_effect`` while funded) x (``boys_service_access`` for boys).
    Exploitation costs ``exploitation_harm`` wellbeing a month. A child waiting for a
    place returns to exploitation with chance ``waitlist_dropout`` (cause ``no_place``).
    Source: "Victim/survivor"; "The evidence base"; Schmitt et al. 2020.
    """
    p, ch = model.params, model.children
    exploited = kernels.exploitation_month(ch.stage, ch.wellbeing, p.exploitation_harm,
                                           EXPLOITED, RE_EXPLOITED)
    waiting = kernels.in_stages(ch.stage, IDENTIFIED, IDENTIFIED)
    drop = waiting[rng.random(len(waiting)) < p.waitlist_dropout]
    model.transition(drop, EXPLOITED, "no_place")
    found = kernels.identification_found(
        exploited, rng.random(len(exploited)), ch.household, ch.community, ch.boy,
        model.families.stigma, model.community_stigma(), p.identification_rate,
        p.stigma_disclosure_effect, 1.0 + p.outreach_effect * model.funded, p.boys_service_access,
        ch.first_identified, ch.waiting_since, model.month)
    model.transition(found, IDENTIFIED, "identified")
    model.now["identified"] = len(found)


# --- 7. Referral and case management ---------------------------------------------------
def referral(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Children in care without a worker are reassigned; waiting children are admitted.

    Free places are ``caseload_standard`` per employed caseworker minus their caseload.
    Children who lost their worker are reassigned first (up to twice the standard, so
    loss of staff raises caseloads). Of the waiting children, a share ``referral_base``
    + (1 - ``referral_base``) x effective coordination is matched each month, longest
    waiting first, while free places last. Children with severe trauma go to a
    specialist when one has a place. Effective coordination is ``coordination`` +
    ``monitoring_effect`` x monitoring share (capped at 1). Source: "Barriers to
    effective multi-disciplinary working".
    """
    p, ch, st = model.params, model.children, model.staff
    workers = (~st.left & (st.role == CASEWORKER)).nonzero()[0]
    if len(workers) == 0:
        return
    orphans = kernels.without_worker(ch.stage, ch.caseworker, IN_CARE)
    model.assign(orphans, workers, limit=2 * p.caseload_standard)
    free = int(np.maximum(0, p.caseload_standard - st.caseload[workers]).sum())
    waiting = kernels.in_stages(ch.stage, IDENTIFIED, IDENTIFIED)
    if free == 0 or len(waiting) == 0:
        return
    coord = model.effective_coordination()
    matched = int(rng.binomial(len(waiting), p.referral_base + (1 - p.referral_base) * coord))
    order = waiting[np.lexsort((rng.random(len(waiting)), ch.waiting_since[waiting]))]
    admitted = model.assign(order[: min(matched, free)], workers, limit=p.caseload_standard)
    kernels.admit(admitted, ch.wellbeing, ch.intake_wellbeing, ch.ever_in_care, ch.unassisted,
                  ch.bond)
    model.transition(admitted, IN_CARE, "admitted")
    model.now["admitted"] = len(admitted)


# --- 8. Recovery in care ---------------------------------------------------------------
def recovery_in_care(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Wellbeing in care grows with worker skill, bond, specialist fit, caseload, resilience.

    gain = ``recovery_rate`` x skill x (0.3 + 0.7 bond) x fit x pressure x
    (0.5 + resilience) x (1 - wellbeing), plus noise. Fit is ``generic_fit`` for a child
    with severe trauma and a generic worker, and is scaled by (0.5 + 0.5
    ``boys_service_access``) for boys; pressure is min(1, standard / caseload) to the
    power ``caseload_pressure``. The bond grows by ``bond_growth`` x (1 - bond) and
    skills by ``skill_gain`` x (1 - skills). A child without a worker does not progress.
    Source: "Recovery"; Morina et al. 2016; "Targeted and generalist service provision".
    """
    p, ch, st = model.params, model.children, model.staff
    cared = kernels.in_care_with_worker(ch.stage, ch.caseworker, ch.months_in_care, IN_CARE)
    if len(cared) == 0:
        return
    noise = rng.normal(0.0, p.wellbeing_noise, len(cared))
    kernels.recovery_step(
        cared, noise, ch.caseworker, ch.severe_trauma, ch.boy, ch.bond, ch.resilience,
        ch.wellbeing, ch.skills, st.specialist, st.skill, st.caseload, p.caseload_standard,
        np.array([p.generic_fit, p.boys_service_access, p.caseload_pressure, p.recovery_rate,
                  p.bond_growth, p.skill_gain], float))


# --- 9. Reintegration ------------------------------------------------------------------
def reintegration(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Ready children leave care; returned children's wellbeing follows their setting.

    A child in care for at least ``min_months_in_care`` with wellbeing at or above
    ``readiness_wellbeing`` leaves (cause ``ready``) to their family if its acceptance is
    at least ``acceptance_min``, otherwise to alternative care with chance
    ``alternative_care_rate`` a month. Follow-up goes to returned children, most recent
    first: by caseworkers (``followup_caseload`` each) while funded, then by community
    care committees up to their capacity. A returned child's wellbeing moves at
    ``reintegration_adjust`` toward 0.1 + 0.3 acceptance + 0.15 (1 - felt stigma) +
    0.1 skills + 0.1 family resources + 0.2 resilience + ``followup_effect`` x
    follow-up - ``abandonment_effect`` if care ended abruptly and no one follows the
    child up. After
    ``stable_months`` back with wellbeing at least ``stable_wellbeing`` the
    reintegration is stable (cause ``stable``). Source: "Reintegration"; Betancourt et
    al. 2010-2020; Butterfly longitudinal research.
    """
    p, ch, fam = model.params, model.children, model.families
    home, other = kernels.ready_to_leave(ch.stage, ch.months_in_stage, ch.wellbeing, ch.household,
                                         fam.acceptance, IN_CARE, p.min_months_in_care,
                                         p.readiness_wellbeing, p.acceptance_min)
    alt = other[rng.random(len(other)) < p.alternative_care_rate]
    ch.alt_care[alt] = True
    leaving = np.concatenate([home, alt])
    model.place_children(leaving, rng)
    model.transition(leaving, REINTEGRATING, "ready")

    back = kernels.in_stages(ch.stage, REINTEGRATING, REINTEGRATED)
    n_prof = model.caseworkers() * p.followup_caseload if model.funded else 0
    returning, followed, committee = kernels.assign_followup(
        back, ch.stage, ch.months_since_exit, ch.unassisted, ch.handed, ch.community,
        model.committee_capacity(), n_prof, ch.followup, ch.committee_followup, REINTEGRATING)
    noise = rng.normal(0.0, p.wellbeing_noise, len(back))
    kernels.reintegration_wellbeing(
        back, noise, ch.wellbeing, ch.household, ch.community, ch.alt_care, ch.skills,
        ch.resilience, ch.withdrawn, ch.handed, ch.followup, ch.committee_followup,
        fam.acceptance, fam.resources, fam.stigma, model.community_stigma(),
        np.array([p.alternative_care_acceptance, p.followup_effect, p.abandonment_effect,
                  p.reintegration_adjust]))
    stable = kernels.newly_stable(returning, ch.months_in_stage, ch.wellbeing,
                                  ch.reintegrated_month, model.month, p.stable_months,
                                  p.stable_wellbeing)
    model.transition(stable, REINTEGRATED, "stable")
    model.now["followed_up"] = followed
    model.now["committee_followed_up"] = committee


# --- 10. Re-exploitation ---------------------------------------------------------------
def re_exploitation(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Returned children may be exploited again; risk is highest early after exit.

    hazard = ``reexploitation_base`` x exp(``poverty_risk`` (1 - resources) +
    ``stigma_risk`` felt stigma + ``acceptance_risk`` (1 - acceptance) +
    ``wellbeing_risk`` (1 - wellbeing) + ``peer_risk`` share of peers exploited) x
    (1 + ``early_risk_multiplier`` exp(-months since exit / ``early_risk_months``)) x
    (1 - ``followup_protection`` if followed up) x (1 - ``committee_protection`` if a
    care committee follows up) x (``stable_risk_factor`` once stable). Source: "Mindsets
    and attitudes"; IOM / Jobe 2010.
    """
    p, ch, fam, net = model.params, model.children, model.families, model.network
    back = kernels.in_stages(ch.stage, REINTEGRATING, REINTEGRATED)
    if len(back) == 0:
        return
    u = rng.random(len(back))
    prm = np.array([p.reexploitation_base, p.poverty_risk, p.stigma_risk, p.acceptance_risk,
                    p.wellbeing_risk, p.peer_risk, p.early_risk_multiplier, p.early_risk_months,
                    p.followup_protection, p.committee_protection, p.stable_risk_factor,
                    p.alternative_care_acceptance, p.revictimisation_harm])
    exploited_peers = kernels.peers_in_stages(*net.peer_pairs(), ch.stage, EXPLOITED,
                                              RE_EXPLOITED)
    hit = kernels.reexploitation_hits(
        back, u, ch.stage, ch.household, ch.community, ch.alt_care, ch.wellbeing,
        ch.months_since_exit, ch.followup, ch.committee_followup, fam.acceptance, fam.resources,
        fam.stigma, model.community_stigma(), exploited_peers, model.peer_degree(), REINTEGRATED,
        ch.reexploit_count, prm)
    model.transition(hit, RE_EXPLOITED, "re_exploited")
    model.now["re_exploited"] = len(hit)


# --- 11. Unassisted recovery -----------------------------------------------------------
def unassisted_recovery(model: ReintegrationModel, rng: np.random.Generator) -> None:
    """Exploited children may leave exploitation and return home without services.

    Monthly chance ``unassisted_recovery_rate`` x (0.5 + resilience) x (1 +
    ``peer_support_effect`` x share of peers back in the community) (cause
    ``unassisted``). Source: "Judging effectiveness" (resilience, friends, school).
    """
    p, ch, net = model.params, model.children, model.network
    exploited = kernels.in_stages(ch.stage, EXPLOITED, RE_EXPLOITED)
    if len(exploited) == 0:
        return
    peers_back = kernels.peers_in_stages(*net.peer_pairs(), ch.stage, REINTEGRATING,
                                         REINTEGRATED)
    out = kernels.unassisted_exits(exploited, rng.random(len(exploited)), ch.resilience,
                                   peers_back, model.peer_degree(), p.unassisted_recovery_rate,
                                   p.peer_support_effect)
    ch.unassisted[out] = ~ch.ever_in_care[out]
    model.place_children(out, rng)
    model.transition(out, REINTEGRATING, "unassisted")
    model.unassisted_recoveries += len(out)


PROCESSES = (
    inflow,
    funding,
    staffing,
    community_capacity,
    stigma_dynamics,
    family_work,
    identification,
    referral,
    recovery_in_care,
    reintegration,
    re_exploitation,
    unassisted_recovery,
)
"""The monthly schedule, in order."""

CHANGES_DERIVED_STATE = frozenset({funding, staffing, community_capacity, stigma_dynamics,
                                   family_work})
"""Processes that change what ``ReintegrationModel`` keeps between processes within a
step (employed community workers, committee capacity, community stigma). The others
change only children and caseloads."""
