"""Compiled per-child loops for the monthly processes (numba).

At 1,000 children a month is dominated by the fixed cost of many small numpy calls
rather than by arithmetic (see ``docs/performance.md``). The loops here do in one pass
what would otherwise take a dozen or more array operations: select children by stage,
count peers in a stage, and compute a hazard or a wellbeing target child by child.

They compute exactly the formulas documented in ``model/processes.py``, in the same
order of floating-point operations, and take their random numbers as arrays drawn by
the calling process from its own stream, so the draws (and the results) are the same
as the array code they replace. Compiled code is cached on disk (``cache=True``), so
only the first run on a machine pays for compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def in_stages(stage, a, b):
    """Indices of children whose stage is ``a`` or ``b``, ascending."""
    return np.flatnonzero((stage == a) | (stage == b))


@njit(cache=True)
def peers_in_stages(pair_a, pair_b, stage, a, b):
    """For every child, the number of its peers whose stage is ``a`` or ``b``.

    ``pair_a``, ``pair_b``: each peer tie once (``Network.peer_pairs``).
    """
    hits = np.zeros(len(stage))
    for e in range(len(pair_a)):
        i, j = pair_a[e], pair_b[e]
        s = stage[j]
        if s == a or s == b:
            hits[i] += 1.0
        s = stage[i]
        if s == a or s == b:
            hits[j] += 1.0
    return hits


@njit(cache=True)
def reexploitation_hits(back, u, stage, household, community, alt_care, wellbeing,
                        months_since_exit, followup, committee_followup, acceptance,
                        resources, family_stigma, community_stigma, peers_exploited,
                        peer_degree, reintegrated, reexploit_count, prm):
    """Returned children (``back``) re-exploited this month, given uniforms ``u``.

    For each child hit: one more re-exploitation, ``revictimisation_harm`` off wellbeing
    (not below 0), and no more follow-up or alternative care.

    ``prm``: reexploitation_base, poverty_risk, stigma_risk, acceptance_risk,
    wellbeing_risk, peer_risk, early_risk_multiplier, early_risk_months,
    followup_protection, committee_protection, stable_risk_factor,
    alternative_care_acceptance, revictimisation_harm.
    """
    base, pov, stig, accr, wbr, peer = prm[0], prm[1], prm[2], prm[3], prm[4], prm[5]
    early, early_months, fprot, cprot, stable = prm[6], prm[7], prm[8], prm[9], prm[10]
    alt_acc, harm = prm[11], prm[12]
    out = np.empty(len(back), np.int64)
    k = 0
    for j in range(len(back)):
        i = back[j]
        h = household[i]
        acc = alt_acc if alt_care[i] else acceptance[h]
        felt = 0.5 * (family_stigma[h] + community_stigma[community[i]])
        share = peers_exploited[i] / peer_degree[i]
        x = (pov * (1.0 - resources[h]) + stig * felt + accr * (1.0 - acc)
             + wbr * (1.0 - wellbeing[i]) + peer * share)
        hazard = base * np.exp(x) * (1.0 + early * np.exp(-months_since_exit[i] / early_months))
        hazard = hazard * ((1.0 - fprot) if followup[i] else 1.0)
        hazard = hazard * ((1.0 - cprot) if committee_followup[i] else 1.0)
        hazard = hazard * (stable if stage[i] == reintegrated else 1.0)
        if u[j] < min(max(hazard, 0.0), 1.0):
            out[k] = i
            k += 1
            reexploit_count[i] += 1
            wellbeing[i] = max(0.0, wellbeing[i] - harm)
            followup[i] = False
            committee_followup[i] = False
            alt_care[i] = False
    return out[:k]


@njit(cache=True)
def unassisted_exits(exploited, u, resilience, peers_back, peer_degree, rate, peer_effect):
    """Exploited children who leave exploitation without services, given uniforms ``u``."""
    out = np.empty(len(exploited), np.int64)
    k = 0
    for j in range(len(exploited)):
        i = exploited[j]
        chance = rate * (0.5 + resilience[i]) * (1.0 + peer_effect * (peers_back[i] / peer_degree[i]))
        if u[j] < chance:
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True)
def identification_found(exploited, u, household, community, boy, family_stigma,
                         community_stigma, base, disclosure, outreach, boys_access,
                         first_identified, waiting_since, month):
    """Exploited children identified this month, given uniforms ``u``.

    ``outreach`` is 1 + outreach_effect while funded, else 1. Each child found starts
    waiting now, and its first identification is recorded.
    """
    out = np.empty(len(exploited), np.int64)
    k = 0
    for j in range(len(exploited)):
        i = exploited[j]
        felt = 0.5 * (family_stigma[household[i]] + community_stigma[community[i]])
        chance = base * (1.0 - disclosure * felt) * outreach * (boys_access if boy[i] else 1.0)
        if u[j] < chance:
            out[k] = i
            k += 1
            if first_identified[i] < 0:
                first_identified[i] = month
            waiting_since[i] = month
    return out[:k]


@njit(cache=True)
def reintegration_wellbeing(back, noise, wellbeing, household, community, alt_care, skills,
                            resilience, withdrawn, handed, followup, committee_followup,
                            acceptance, resources, family_stigma, community_stigma, prm):
    """Move returned children's wellbeing toward the target of their setting (in place).

    ``prm``: alternative_care_acceptance, followup_effect, abandonment_effect,
    reintegration_adjust.
    """
    alt_acc, f_effect, abandon, adjust = prm[0], prm[1], prm[2], prm[3]
    for j in range(len(back)):
        i = back[j]
        h = household[i]
        acc = alt_acc if alt_care[i] else acceptance[h]
        felt = 0.5 * (family_stigma[h] + community_stigma[community[i]])
        supported = followup[i] or committee_followup[i]
        target = (0.1 + 0.3 * acc + 0.15 * (1.0 - felt) + 0.1 * skills[i] + 0.1 * resources[h]
                  + 0.2 * resilience[i] + f_effect * supported
                  - abandon * (withdrawn[i] and not handed[i] and not supported))
        w = wellbeing[i] + adjust * (target - wellbeing[i]) + noise[j]
        wellbeing[i] = min(max(w, 0.0), 1.0)


@njit(cache=True)
def draw_peers(children, com, u, members, count, out_src, out_dst):
    """File each new child under its community and tie it to earlier children there.

    Children are taken in order (ascending ids). A child's rank is the number of
    earlier children in its community; each of its ``u.shape[1]`` draws picks
    ``members[c, int(u * rank)]``. Duplicate draws are dropped and each child's peers
    are written in ascending order, so the ties come out sorted by (child, peer).

    Returns:
        The number of ties written to ``out_src``/``out_dst``.
    """
    n_draws = u.shape[1]
    picked = np.empty(n_draws, np.int64)
    m = 0
    for j in range(len(children)):
        child, c = children[j], com[j]
        rank = count[c]
        members[c, rank] = child
        count[c] = rank + 1
        if rank == 0:
            continue
        for d in range(n_draws):
            picked[d] = members[c, np.int64(u[j, d] * rank)]
        picked.sort()
        for d in range(n_draws):
            if d == 0 or picked[d] != picked[d - 1]:
                out_src[m] = child
                out_dst[m] = picked[d]
                m += 1
    return m


@njit(cache=True)
def in_care_with_worker(stage, caseworker, months_in_care, in_care):
    """Count a month in care for every child in care; return those with a worker."""
    n = 0
    for i in range(len(stage)):
        if stage[i] == in_care:
            months_in_care[i] += 1
            if caseworker[i] >= 0:
                n += 1
    out = np.empty(n, np.int64)
    k = 0
    for i in range(len(stage)):
        if stage[i] == in_care and caseworker[i] >= 0:
            out[k] = i
            k += 1
    return out


@njit(cache=True)
def recovery_step(cared, noise, caseworker, severe_trauma, boy, bond, resilience, wellbeing,
                  skills, specialist, skill, caseload, caseload_standard, prm):
    """Wellbeing, bond and skills of children in care with a worker (in place).

    ``prm``: generic_fit, boys_service_access, caseload_pressure, recovery_rate,
    bond_growth, skill_gain.
    """
    generic_fit, boys_access, pressure_exp, rate, bond_growth, skill_gain = (
        prm[0], prm[1], prm[2], prm[3], prm[4], prm[5])
    for j in range(len(cared)):
        i = cared[j]
        w = caseworker[i]
        fit = generic_fit if (severe_trauma[i] and not specialist[w]) else 1.0
        fit = fit * ((0.5 + 0.5 * boys_access) if boy[i] else 1.0)
        pressure = min(1.0, caseload_standard / max(caseload[w], 1)) ** pressure_exp
        gain = (rate * skill[w] * (0.3 + 0.7 * bond[i]) * fit * pressure
                * (0.5 + resilience[i]) * (1.0 - wellbeing[i]))
        wellbeing[i] = min(max(wellbeing[i] + gain + noise[j], 0.0), 1.0)
        bond[i] += bond_growth * (1.0 - bond[i])
        skills[i] += skill_gain * (1.0 - skills[i])


@njit(cache=True)
def family_step(counselled, supported, was_supported, acceptance, stigma, resources,
                dependency, prm):
    """Counselling, economic support, dependency and acceptance drift of families (in place).

    ``prm``: counselling_effect, economic_support_effect, dependency_growth,
    dependency_shock, acceptance_drift.
    """
    counsel, support, growth, shock, drift = prm[0], prm[1], prm[2], prm[3], prm[4]
    for i in range(len(acceptance)):
        if counselled[i]:
            acceptance[i] += counsel * (1.0 - acceptance[i])
            stigma[i] -= counsel * stigma[i]
        if supported[i]:
            resources[i] += support * (1.0 - resources[i])
            dependency[i] += growth * (1.0 - dependency[i])
        else:
            if was_supported[i]:
                resources[i] -= shock * dependency[i] * resources[i]
            dependency[i] *= 0.5
        a = acceptance[i] + drift * ((1.0 - stigma[i]) - acceptance[i])
        acceptance[i] = min(max(a, 0.0), 1.0)


@njit(cache=True)
def stigma_step(family_stigma, leader_stigma, indptr, indices, weights, has_ties, norm, trained,
                workers, community, prm):
    """Update all adults' beliefs (households, then leaders) in place, clipped to 0-1.

    Each adult's target is the influence-weighted mean of its neighbours' beliefs: row
    ``i`` of the row-normalised influence matrix in CSR form (``indptr``, ``indices``,
    ``weights``), summed in the matrix's order. ``prm``: stigma_influence_rate,
    stigma_threshold, norm_reversion, leader_training_effect, awareness_effect.
    """
    rate, threshold, reversion, training, awareness = prm[0], prm[1], prm[2], prm[3], prm[4]
    t4 = threshold ** 4.0
    h = len(family_stigma)
    s = np.concatenate((family_stigma, leader_stigma))
    for i in range(len(s)):
        x = s[i]
        target = 0.0
        for jj in range(indptr[i], indptr[i + 1]):
            target += weights[jj] * s[indices[jj]]
        d = (target if has_ties[i] else x) - x
        if threshold > 0:
            d4 = d ** 4.0
            d = d * d4 / (d4 + t4)
        x = x + rate * d
        x = x + reversion * (norm[i] - x)
        x = min(max(x - (training * trained[i - h] * x if i >= h
                         else min(1.0, awareness * workers[community[i]]) * x), 0.0), 1.0)
        if i < h:
            family_stigma[i] = x
        else:
            leader_stigma[i - h] = x


@njit(cache=True)
def ready_to_leave(stage, months_in_stage, wellbeing, household, acceptance, in_care,
                   min_months, readiness, acceptance_min):
    """Children in care ready to leave: those whose family accepts them, and the others."""
    home = np.empty(len(stage), np.int64)
    other = np.empty(len(stage), np.int64)
    n_home = n_other = 0
    for i in range(len(stage)):
        if stage[i] == in_care and months_in_stage[i] >= min_months and wellbeing[i] >= readiness:
            if acceptance[household[i]] >= acceptance_min:
                home[n_home] = i
                n_home += 1
            else:
                other[n_other] = i
                n_other += 1
    return home[:n_home], other[:n_other]


@njit(cache=True)
def assign_followup(back, stage, months_since_exit, unassisted, handed, community, capacity,
                    n_prof, followup, committee_followup, reintegrating):
    """Count a month since exit and choose this month's follow-up (in place).

    Returned children still reintegrating are taken most recently returned first: the
    first ``n_prof`` who came through the programme are followed up by caseworkers; of
    the rest, handed-over children first, each community's committee follows up as many
    as its ``capacity``.

    Returns:
        The children still reintegrating (ascending months since exit) and the numbers
        followed up by caseworkers and by committees.
    """
    for j in range(len(back)):
        months_since_exit[back[j]] += 1
    followup[:] = False
    committee_followup[:] = False
    n = 0
    for j in range(len(back)):
        if stage[back[j]] == reintegrating:
            n += 1
    returning = np.empty(n, np.int64)
    since = np.empty(n, np.int64)
    k = 0
    for j in range(len(back)):
        if stage[back[j]] == reintegrating:
            returning[k] = back[j]
            since[k] = months_since_exit[back[j]]
            k += 1
    returning = returning[np.argsort(since, kind="mergesort")]
    n_followed = 0
    for i in returning:
        if n_followed < n_prof and not unassisted[i]:
            followup[i] = True
            n_followed += 1
    used = np.zeros(len(capacity))
    n_committee = 0
    for first_handed in (True, False):
        for i in returning:
            if not followup[i] and handed[i] == first_handed:
                c = community[i]
                if used[c] < capacity[c]:
                    committee_followup[i] = True
                    used[c] += 1.0
                    n_committee += 1
    return returning, n_followed, n_committee


@njit(cache=True)
def newly_stable(returning, months_in_stage, wellbeing, reintegrated_month, month,
                 stable_months, stable_wellbeing):
    """Returning children whose reintegration is stable now (ascending); records the first month."""
    out = np.empty(len(returning), np.int64)
    k = 0
    for i in returning:
        if months_in_stage[i] >= stable_months and wellbeing[i] >= stable_wellbeing:
            if reintegrated_month[i] < 0:
                reintegrated_month[i] = month
            out[k] = i
            k += 1
    return np.sort(out[:k])


@njit(cache=True)
def staff_month(employed, u, role, caseload, burnout, skill, months_employed, caseworker,
                caseload_standard, prm):
    """Burn-out, skill and months of employed staff (in place); returns who leaves.

    ``prm``: base_stress, burnout_rate, burnout_recovery, support_effect, support level,
    learning_rate, base_turnover, burnout_turnover, contract_insecurity, insecure (0/1).
    """
    stress, rate, recovery, effect, support = prm[0], prm[1], prm[2], prm[3], prm[4]
    learning, turnover, burnout_turnover, insecurity, insecure = (
        prm[5], prm[6], prm[7], prm[8], prm[9])
    out = np.empty(len(employed), np.int64)
    k = 0
    for j in range(len(employed)):
        i = employed[j]
        load = caseload[i] / caseload_standard if role[i] == caseworker else 1.0
        b = burnout[i] + stress + rate * max(0.0, load - 1.0)
        b = b - b * (recovery + 0.1 * effect * support)
        burnout[i] = min(max(b, 0.0), 1.0)
        skill[i] += learning * (1.0 - skill[i])
        months_employed[i] += 1
        hazard = (turnover * (1.0 + burnout_turnover * burnout[i])
                  * (1.0 + insecurity * insecure) * (1.0 - effect * support))
        if u[j] < min(max(hazard, 0.0), 1.0):
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True)
def children_stats(stage, wellbeing, withdrawn, intake_wellbeing, n_stages):
    """Children per stage, their wellbeing sums, and withdrawn children now worse off."""
    counts = np.zeros(n_stages, np.int64)
    sums = np.zeros(n_stages)
    worse = 0
    for i in range(len(stage)):
        counts[stage[i]] += 1
        sums[stage[i]] += wellbeing[i]
        if withdrawn[i] and wellbeing[i] < intake_wellbeing[i]:
            worse += 1
    return counts, sums, worse


@njit(cache=True)
def leader_training(u_train, u_lapse, trained, committee, community, workers, training_rate,
                    decay):
    """Train leaders where community workers are active; lapse where none are (in place).

    A leader is trained with chance 1 - (1 - ``training_rate``)^(workers in its
    community) and then sits on the care committee; afterwards, a trained leader in a
    community without workers lapses with chance ``decay``.
    """
    for i in range(len(trained)):
        w = workers[community[i]]
        if not trained[i] and u_train[i] < 1.0 - (1.0 - training_rate) ** float(w):
            trained[i] = True
            committee[i] = True
        if trained[i] and w == 0 and u_lapse[i] < decay:
            trained[i] = False
            committee[i] = False


@njit(cache=True)
def committee_lapse(u, committee, community, workers, decay):
    """Committee households in communities without workers lapse with chance ``decay``."""
    for i in range(len(committee)):
        if committee[i] and workers[community[i]] == 0 and u[i] < decay:
            committee[i] = False


@njit(cache=True)
def families_to_serve(stage, household, ever_in_care, n_families, in_care, reintegrating):
    """Families to serve: those with a child in care, then the others with a child back home.

    The second group are families of a child still reintegrating after care. Both are
    ascending.
    """
    mark = np.zeros(n_families, np.int8)
    for i in range(len(stage)):
        if stage[i] == in_care:
            mark[household[i]] = 2
    for i in range(len(stage)):
        if stage[i] == reintegrating and ever_in_care[i] and mark[household[i]] == 0:
            mark[household[i]] = 1
    n1 = n2 = 0
    for f in range(n_families):
        if mark[f] == 2:
            n1 += 1
        elif mark[f] == 1:
            n2 += 1
    first = np.empty(n1, np.int64)
    second = np.empty(n2, np.int64)
    n1 = n2 = 0
    for f in range(n_families):
        if mark[f] == 2:
            first[n1] = f
            n1 += 1
        elif mark[f] == 1:
            second[n2] = f
            n2 += 1
    return first, second


@njit(cache=True)
def exploitation_month(stage, wellbeing, harm, exploited, re_exploited):
    """Children in exploitation (ascending); each loses ``harm`` wellbeing (not below 0)."""
    n = 0
    for i in range(len(stage)):
        if stage[i] == exploited or stage[i] == re_exploited:
            n += 1
    out = np.empty(n, np.int64)
    k = 0
    for i in range(len(stage)):
        if stage[i] == exploited or stage[i] == re_exploited:
            wellbeing[i] = max(0.0, wellbeing[i] - harm)
            out[k] = i
            k += 1
    return out


@njit(cache=True)
def release(idx, caseworker, caseload, months_since_exit):
    """Children leave care or exploitation: free their worker's place, restart the clock."""
    for i in idx:
        w = caseworker[i]
        if w >= 0:
            caseload[w] -= 1
            caseworker[i] = -1
        months_since_exit[i] = 0


@njit(cache=True)
def move(idx, stage, months_in_stage, to_stage):
    """Move children to ``to_stage``; returns the stages they came from."""
    before = np.empty(len(idx), np.int8)
    for j in range(len(idx)):
        i = idx[j]
        before[j] = stage[i]
        stage[i] = to_stage
        months_in_stage[i] = 0
    return before


@njit(cache=True)
def without_worker(stage, caseworker, in_care):
    """Children in care without an assigned worker, ascending."""
    return np.flatnonzero((stage == in_care) & (caseworker < 0))


@njit(cache=True)
def admit(admitted, wellbeing, intake_wellbeing, ever_in_care, unassisted, bond):
    """Record admission to care: wellbeing at intake, in care at least once, a new bond."""
    for i in admitted:
        intake_wellbeing[i] = wellbeing[i]
        ever_in_care[i] = True
        unassisted[i] = False
        bond[i] = 0.0
