"""``ReintegrationModel``: the Mesa model of children's recovery and reintegration."""

from __future__ import annotations

import heapq
from typing import Any

import mesa
import numpy as np
from scipy import sparse

from . import kernels, processes
from .agents import (
    CASEWORKER,
    COMMUNITY_WORKER,
    COUNSELLOR,
    EXPLOITED,
    IN_CARE,
    ROLES,
    STAGES,
    Child,
    CommunityLeader,
    Family,
    Professional,
)
from .funding import FundingSchedule, funding_schedule
from .network import Network, build_network
from .outputs import TIMESERIES, month_stats, run_summary
from .parameters import Params
from .store import Store

STREAMS = ("network", "population", "funding_schedule") + tuple(
    f.__name__ for f in processes.PROCESSES)
"""Named random streams, each spawned from the run seed (common random numbers)."""

NEVER = -1


class ReintegrationModel(mesa.Model):
    """Children, families, community leaders and professionals on a social network.

    One step is one month. ``step`` runs these processes in this order (see
    ``model/processes.py`` and ``docs/ODD.md``):

    1. ``inflow`` – new children enter exploitation;
    2. ``funding`` – this month's budget; at a gap or end, contracts end and children
       in care leave (premature exit or hand-over to community structures);
    3. ``staffing`` – hiring after the lag, skill, burn-out, turnover;
    4. ``community_capacity`` – leader training, care committees, decay;
    5. ``stigma_dynamics`` – beliefs on the network;
    6. ``family_work`` – counselling, economic support, dependency;
    7. ``identification`` – identification and disclosure, waiting-list drop-out;
    8. ``referral`` – case management: reassignment and admission to care;
    9. ``recovery_in_care`` – wellbeing, bond and skills in care;
    10. ``reintegration`` – planned exits, follow-up, wellbeing at home, stability;
    11. ``re_exploitation`` – hazard for returned children;
    12. ``unassisted_recovery`` – leaving exploitation without services;

    then the month's data are collected.

    Args:
        rng: the run seed (Mesa-style); ``None`` draws one, recorded as ``self.seed``.
        **params: any parameter of :class:`model.parameters.Params` by name.
    """

    def __init__(self, rng: int | None = None, **params: Any) -> None:
        """Build the network and the agents from validated parameters and a seed."""
        p = Params.from_dict(params)
        if rng is None:
            rng = int(np.random.SeedSequence().entropy % (2**63))
        if not isinstance(rng, int | np.integer):
            raise TypeError("rng must be an integer seed")
        super().__init__(rng=int(rng))
        self.seed = int(rng)
        self.params = p
        self.shares = p.budget_shares()
        streams = np.random.SeedSequence(self.seed).spawn(len(STREAMS))
        self.streams = {name: np.random.default_rng(s) for name, s in zip(STREAMS, streams, strict=True)}
        self.month = 0
        self.horizon = p.months
        self.funded = False
        self.budget = 0.0
        self.spend = 0.0
        self.total_spend = 0.0
        self.premature_exits = 0
        self.handed_over = 0
        self.resignations = 0
        self.unassisted_recoveries = 0
        self.pending_hires: list[tuple[int, int]] = []
        self._event_parts: list[tuple[np.ndarray, ...]] = []
        self.now: dict[str, float] = {}
        # Derived state (community stigma, committee capacity, community workers), kept
        # within one step between the processes that change it; None outside ``step`` and
        # while such a process runs.
        self._memo: dict[str, Any] | None = None

        self.schedule: FundingSchedule = funding_schedule(p, p.months, self.streams["funding_schedule"])
        self._funding_end = self.schedule.last_end()
        self.network: Network = build_network(p, self.streams["network"])
        self._init_households(self.streams["population"])
        self.children = Store({
            "stage": (np.int8, EXPLOITED), "wellbeing": (float, 0.0),
            "entry_wellbeing": (float, 0.0), "intake_wellbeing": (float, np.nan),
            "resilience": (float, 0.5), "skills": (float, 0.0),
            "severe_trauma": (bool, False), "boy": (bool, False), "age_at_entry": (np.int16, 0),
            "household": (np.int64, 0), "community": (np.int64, 0), "entry_month": (np.int32, 0),
            "first_identified": (np.int32, NEVER), "waiting_since": (np.int32, 0),
            "months_in_care": (np.int32, 0), "worker_changes": (np.int32, 0),
            "withdrawn": (bool, False), "handed": (bool, False),
            "reexploit_count": (np.int32, 0), "caseworker": (np.int64, -1),
            "bond": (float, 0.0), "months_in_stage": (np.int32, 0),
            "months_since_exit": (np.int32, 0), "followup": (bool, False),
            "committee_followup": (bool, False), "ever_in_care": (bool, False),
            "reintegrated_month": (np.int32, NEVER), "alt_care": (bool, False),
            "unassisted": (bool, False),
        }, capacity=max(16, int(p.n_children * (1 + p.annual_inflow_share * p.months / 12) * 1.1)))
        self.staff = Store({
            "role": (np.int8, CASEWORKER), "specialist": (bool, False), "skill": (float, 0.0),
            "caseload": (np.int32, 0), "burnout": (float, 0.0), "left": (bool, False),
            "community": (np.int64, -1), "months_employed": (np.int32, 0),
        })
        self.child_agents: list[Child] = []
        self.staff_agents: list[Professional] = []
        self.add_children(p.n_children, self.streams["population"])
        if self.schedule.funded[:1].any():
            self.funded, self.budget = True, p.monthly_budget
            posts = self.posts()
            for role in (CASEWORKER, COUNSELLOR, COMMUNITY_WORKER):
                for _ in range(posts[role]):
                    # The programme starts with an experienced team.
                    self.hire(role, float(self.streams["population"].uniform(0.4, 0.8)),
                              self.streams["population"])
            self.funded, self.budget = False, 0.0  # the funding process sets them monthly
        self.datacollector = mesa.DataCollector(
            model_reporters={name: _reporter(name) for name in TIMESERIES})
        self.running = True

    # --- construction ------------------------------------------------------------
    def _init_households(self, rng: np.random.Generator) -> None:
        p, net = self.params, self.network
        h, n_lead = net.n_households, net.n_leaders
        rural_adult = net.rural[net.community]
        norm = np.clip(p.initial_stigma + p.rural_stigma_offset * rural_adult, 0.0, 1.0)
        belief = np.clip(norm + rng.normal(0.0, p.stigma_spread, len(norm)), 0.0, 1.0)
        self.belief_norm = norm
        self.families = Store({
            "acceptance": (float, 0.5), "resources": (float, 0.35), "stigma": (float, 0.5),
            "counselled": (bool, False), "supported": (bool, False),
            "dependency": (float, 0.0), "committee": (bool, False),
        }, capacity=h)
        # Beta(2, b) with mean initial_resources (the degenerate ends are constant).
        r = p.initial_resources
        resources = (rng.beta(2.0, 2.0 * (1 - r) / r, h) if 0 < r < 1 else np.full(h, r))
        acceptance = np.clip(1.0 - belief[:h] + rng.normal(0, 0.1, h), 0.0, 1.0)
        self.families.append(h, stigma=belief[:h], resources=resources, acceptance=acceptance)
        self.leaders = Store({
            "stigma": (float, 0.5), "influence": (float, p.leader_influence),
            "trained": (bool, False), "committee": (bool, False),
        }, capacity=max(n_lead, 1))
        self.leaders.append(n_lead, stigma=belief[h:])
        self.family_agents = [Family(self, i) for i in range(h)]
        self.leader_agents = [CommunityLeader(self, i) for i in range(n_lead)]
        sizes = np.array([len(x) for x in net.households_by_community], np.int64)
        self._community_cdf = np.cumsum(sizes / sizes.sum())
        self._community_cdf /= self._community_cdf[-1]
        self._community_sizes = sizes
        self._community_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._households_flat = np.concatenate(net.households_by_community).astype(np.int64)

    def add_children(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """Create ``k`` children entering exploitation this month; returns their ids."""
        p = self.params
        # Same draws as rng.choice(n, size=k, p=weights), without its per-call set-up.
        com = np.searchsorted(self._community_cdf, rng.random(k), side="right")
        pick = (rng.random(k) * self._community_sizes[com]).astype(np.int64)
        household = self._households_flat[self._community_offsets[com] + pick]
        age = rng.integers(8, 18, k)
        boy = rng.random(k) < p.boy_share
        # Beta with mean entry_wellbeing and concentration 10: about 56% below 0.4 at
        # the default mean (Kiss et al. 2015: depression 56% at intake).
        m = p.entry_wellbeing
        wellbeing = rng.beta(10 * m, 10 * (1 - m), k)
        # np.minimum(np.maximum(...)) is np.clip without its per-call overhead.
        resilience = np.minimum(np.maximum(
            rng.beta(2, 2, k) + p.age_resilience_effect * (age - 12.5), 0.0), 1.0)
        skills = np.minimum(np.maximum(rng.beta(2, 5, k) + 0.02 * (age - 12.5), 0.0), 1.0)
        severe = rng.random(k) < p.severe_trauma_share
        ids = self.children.append(
            k, wellbeing=wellbeing, entry_wellbeing=wellbeing, resilience=resilience,
            skills=skills, severe_trauma=severe, boy=boy, age_at_entry=age,
            household=household, community=com, entry_month=self.month)
        self.child_agents.extend([Child(self, i) for i in ids.tolist()])
        self.network.add_peers(ids, self.children.community, p.peers_per_child,
                               self.streams["network"])
        return ids

    # --- helpers used by the processes ----------------------------------------------
    def transition(self, idx: np.ndarray, to_stage: int, cause: str) -> None:
        """Move children ``idx`` to ``to_stage`` and log one event each."""
        idx = np.asarray(idx, np.int64)
        if len(idx) == 0:
            return
        ch = self.children
        before = kernels.move(idx, ch.stage, ch.months_in_stage, to_stage)
        # (month, children, stages before, stage after, cause); expanded by ``events``.
        self._event_parts.append((self.month, idx, before, to_stage, cause))

    def place_children(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """Children leave care or exploitation for the community: release their worker."""
        ch = self.children
        kernels.release(np.asarray(idx, np.int64), ch.caseworker, self.staff.caseload,
                        ch.months_since_exit)

    def lose_worker(self, idx: np.ndarray) -> None:
        """Children whose worker left: bond reset, setback, a caseworker change."""
        ch, p = self.children, self.params
        idx = idx[ch.stage[idx] == IN_CARE]
        ch.caseworker[idx] = -1
        ch.bond[idx] = 0.0
        ch.worker_changes[idx] += 1
        ch.wellbeing[idx] = np.maximum(0.0, ch.wellbeing[idx] - p.worker_change_setback)

    def assign(self, children: np.ndarray, workers: np.ndarray, limit: int) -> np.ndarray:
        """Assign children, in order, each to the least-loaded caseworker below ``limit``.

        A child with severe trauma goes to a specialist when one is below the limit.
        Children left without a place stay unassigned.

        Returns:
            The children who were assigned.
        """
        st, ch = self.staff, self.children
        if len(children) == 0:
            return np.empty(0, np.int64)
        ids = workers.tolist()
        load = st.caseload[workers].tolist()
        special = st.specialist[workers].tolist()
        severe = ch.severe_trauma[children].tolist()
        # Heaps of (caseload, position) below the limit: the top is the least-loaded
        # worker, the first in ``workers`` among equals. Entries whose caseload has
        # changed since are stale and dropped when they reach the top.
        anyone = [(c, j) for j, c in enumerate(load) if c < limit]
        specialists = [(c, j) for j, c in enumerate(load) if c < limit and special[j]]
        heapq.heapify(anyone)
        heapq.heapify(specialists)
        chosen, done = [], []
        for child, sev in zip(children.tolist(), severe, strict=True):
            while anyone and anyone[0][0] != load[anyone[0][1]]:
                heapq.heappop(anyone)
            if not anyone:
                break
            j = anyone[0][1]
            if sev:
                while specialists and specialists[0][0] != load[specialists[0][1]]:
                    heapq.heappop(specialists)
                if specialists:
                    j = specialists[0][1]
            load[j] += 1
            if load[j] < limit:
                heapq.heappush(anyone, (load[j], j))
                if special[j]:
                    heapq.heappush(specialists, (load[j], j))
            chosen.append(ids[j])
            done.append(child)
        done_arr = np.array(done, np.int64)
        ch.caseworker[done_arr] = np.array(chosen, np.int64)
        st.caseload[workers] = load
        return done_arr

    def hire(self, role: int, skill: float, rng: np.random.Generator) -> None:
        """Employ a new professional in ``role``."""
        p = self.params
        specialist = bool(role == CASEWORKER and rng.random() < p.specialist_share)
        community = -1
        if role == COMMUNITY_WORKER:
            community = self._next_community()
        idx = self.staff.append(1, role=role, specialist=specialist, skill=skill,
                                community=community)
        self.staff_agents.append(Professional(self, int(idx[0])))

    def _next_community(self) -> int:
        """The community with fewest active community workers (largest first on ties)."""
        workers = self.community_workers()
        sizes = np.array([len(x) for x in self.network.households_by_community])
        return int(np.lexsort((-sizes, workers))[0])

    def posts(self) -> dict[int, int]:
        """Funded posts per role this month."""
        p, b = self.params, self.budget if self.funded else 0.0
        return {
            CASEWORKER: int(b * self.shares["casework"] // p.salary),
            COUNSELLOR: int(b * self.shares["family"] * (1 - p.economic_share) // p.salary),
            COMMUNITY_WORKER: int(b * self.shares["community"] // p.salary),
        }

    def _employed(self, role: int) -> np.ndarray:
        st = self.staff
        return ~st.left & (st.role == role)

    def caseworkers(self) -> int:
        """Caseworkers employed now."""
        return np.count_nonzero(self._employed(CASEWORKER))

    def counsellors(self) -> int:
        """Counsellors employed now."""
        return np.count_nonzero(self._employed(COUNSELLOR))

    def community_workers(self) -> np.ndarray:
        """Community workers employed now, per community (do not modify the result)."""
        memo = self._memo
        if memo is not None and "community_workers" in memo:
            return memo["community_workers"]
        st = self.staff
        mask = self._employed(COMMUNITY_WORKER)
        workers = np.bincount(st.community[mask], minlength=self.network.n_communities)
        if memo is not None:
            memo["community_workers"] = workers
        return workers

    def support_level(self) -> float:
        """Staff support per worker relative to ``support_cost`` (0-1)."""
        n = len(self.staff) - np.count_nonzero(self.staff.left)
        if n == 0 or not self.funded:
            return 0.0
        money = self.budget * self.shares["staff_support"]
        return float(min(1.0, money / (n * self.params.support_cost)))

    def effective_coordination(self) -> float:
        """Coordination raised by monitoring spend while funded."""
        p = self.params
        boost = p.monitoring_effect * self.shares["monitoring"] if self.funded else 0.0
        return float(min(1.0, p.coordination + boost))

    def committee_capacity(self) -> np.ndarray:
        """Children each community's care committee can follow up (do not modify)."""
        memo = self._memo
        if memo is not None and "committee_capacity" in memo:
            return memo["committee_capacity"]
        net, fam, lead = self.network, self.families, self.leaders
        members = np.bincount(net.community[: net.n_households][fam.committee],
                              minlength=net.n_communities)
        if len(lead):
            members = members + np.bincount(net.community[net.n_households:][lead.committee],
                                            minlength=net.n_communities)
        capacity = np.floor(members * self.params.committee_children_per_member)
        if memo is not None:
            memo["committee_capacity"] = capacity
        return capacity

    def committee_load(self) -> np.ndarray:
        """Children each community's committee follows up now."""
        ch = self.children
        return np.bincount(ch.community[ch.committee_followup],
                           minlength=self.network.n_communities).astype(float)

    def tie_weights(self) -> np.ndarray:
        """Influence of each tie's source: 1 for a household, the leader's influence."""
        net = self.network
        w = np.ones(len(net.src))
        from_leader = net.src >= net.n_households
        if from_leader.any():
            w[from_leader] = self.leaders.influence[net.src[from_leader] - net.n_households]
        return w

    def influence_matrix(self) -> tuple[sparse.csr_array, np.ndarray]:
        """Row-normalised influence matrix W (``W @ beliefs`` = neighbours' weighted mean).

        Rebuilt only when a leader's ``influence`` has changed. Also returns which adults
        have any tie (the others keep their own belief).
        """
        key = self.leaders.influence.copy()
        cached = getattr(self, "_influence", None)
        if cached is not None and np.array_equal(cached[0], key):
            return cached[1], cached[2]
        net = self.network
        n = net.n_adults
        w = self.tie_weights()
        total = np.bincount(net.dst, weights=w, minlength=n)
        has = total > 0
        norm = w / np.where(has, total, 1.0)[net.dst]
        matrix = sparse.csr_array((norm, (net.dst, net.src)), shape=(n, n))
        self._influence = (key, matrix, has)
        return matrix, has

    def beliefs(self) -> np.ndarray:
        """Stigma beliefs of all adults: households then leaders (a copy)."""
        return np.concatenate([self.families.stigma, self.leaders.stigma])

    def set_beliefs(self, s: np.ndarray) -> None:
        """Write adults' beliefs back (households then leaders)."""
        h = self.network.n_households
        self.families.stigma = s[:h]
        if len(self.leaders):
            self.leaders.stigma = s[h:]

    def community_stigma(self) -> np.ndarray:
        """Mean stigma belief of each community's households and leaders (do not modify)."""
        memo = self._memo
        if memo is not None and "community_stigma" in memo:
            return memo["community_stigma"]
        net = self.network
        s = self.beliefs()
        total = np.bincount(net.community, weights=s, minlength=net.n_communities)
        count = np.bincount(net.community, minlength=net.n_communities)
        mean = total / np.maximum(count, 1)
        if memo is not None:
            memo["community_stigma"] = mean
        return mean

    def peer_degree(self) -> np.ndarray:
        """Every child's number of peers, at least 1 (the denominator of peer shares)."""
        net, n, ties = self.network, len(self.children), len(self.network.peer_src)
        cached = getattr(self, "_peer_degree", None)
        if cached is not None and cached[0] == ties and len(cached[1]) == n:
            return cached[2]
        if cached is not None and cached[0] <= ties and len(cached[1]) <= n:
            # Ties are only ever appended: count the new ones.
            degree = np.zeros(n, np.int64)
            degree[: len(cached[1])] = cached[1]
            degree += np.bincount(net.peer_src[cached[0]:], minlength=n)
        else:
            degree = np.bincount(net.peer_src, minlength=n)
        self._peer_degree = (ties, degree, np.maximum(degree, 1))
        return self._peer_degree[2]

    # --- the schedule --------------------------------------------------------------
    def step(self) -> None:
        """Advance one month: run every process in the documented order, then collect."""
        self.now = dict.fromkeys(("new_children", "identified", "admitted", "resignations",
                                  "contracts_ended", "re_exploited", "families_counselled",
                                  "families_supported", "followed_up",
                                  "committee_followed_up"), 0)
        self.spend = 0.0
        self._memo = {}
        for process in processes.PROCESSES:
            if process in processes.CHANGES_DERIVED_STATE:
                # No memo while a process changes what is memoised; a fresh one after.
                self._memo = None
                process(self, self.streams[process.__name__])
                self._memo = {}
            else:
                process(self, self.streams[process.__name__])
        self._account_spend()
        self.children.months_in_stage[:] += 1
        self._snapshot_for_sustainability()
        self.stats = month_stats(self)
        self._memo = None
        self.datacollector.collect(self)
        self.month += 1
        if self.month >= self.horizon:
            self.running = False

    def _account_spend(self) -> None:
        """Money spent this month: salaries, staff support, monitoring, family support."""
        if not self.funded:
            return
        st = self.staff
        employed = len(st) - np.count_nonzero(st.left)
        self.spend += employed * self.params.salary
        self.spend += self.support_level() * employed * self.params.support_cost
        self.spend += self.budget * self.shares["monitoring"]
        self.total_spend += self.spend

    def _snapshot_for_sustainability(self) -> None:
        """Remember who was back in the community when funding ended for good."""
        if self.month == self._funding_end:
            self.returned_at_funding_end = np.flatnonzero(
                np.isin(self.children.stage, processes.RETURNED))

    def run(self, months: int | None = None) -> ReintegrationModel:
        """Step to the horizon (or ``months`` more steps); returns self."""
        for _ in range(self.horizon - self.month if months is None else months):
            self.step()
        return self

    # --- outputs ----------------------------------------------------------------------
    def events(self):
        """The event log as a DataFrame: month, child_id, from_stage, to_stage, cause."""
        import pandas as pd

        if not self._event_parts:
            return pd.DataFrame({"month": [], "child_id": [], "from_stage": [], "to_stage": [],
                                 "cause": []})
        sizes = [len(e[1]) for e in self._event_parts]
        month = np.repeat(np.array([e[0] for e in self._event_parts], np.int32), sizes)
        child = np.concatenate([e[1] for e in self._event_parts]).astype(np.int64)
        frm = np.concatenate([e[2] for e in self._event_parts])
        to = np.repeat(np.array([e[3] for e in self._event_parts], np.int8), sizes)
        causes = sorted({e[4] for e in self._event_parts})
        code = {c: i for i, c in enumerate(causes)}
        cause = np.repeat(np.array([code[e[4]] for e in self._event_parts], np.int64), sizes)
        # Taking from an index of strings builds the string columns without converting
        # one Python object per row.
        names = pd.Index(STAGES, dtype="str")
        return pd.DataFrame({"month": month, "child_id": child, "from_stage": names.take(frm),
                             "to_stage": names.take(to),
                             "cause": pd.Index(causes, dtype="str").take(cause)})

    def timeseries(self):
        """The monthly series collected by Mesa's DataCollector, with a ``month`` column."""
        import pandas as pd

        # The same frame as ``get_model_vars_dataframe()`` with a month column, built from
        # arrays rather than lists of Python numbers.
        series = self.datacollector.model_vars
        months = len(next(iter(series.values()), []))
        return pd.DataFrame({"month": np.arange(months),
                             **{name: np.asarray(v) for name, v in series.items()}})

    def children_table(self):
        """One row per child (see ``docs/ODD.md``, Outputs)."""
        import pandas as pd

        ch, net = self.children, self.network
        return pd.DataFrame({
            "child_id": np.arange(len(ch)),
            "gender": pd.Index(["girl", "boy"], dtype="str").take(ch.boy.astype(np.int64)),
            "age_at_entry": ch.age_at_entry.astype(int),
            "community": ch.community,
            "rural": net.rural[ch.community],
            "entry_month": ch.entry_month,
            "first_identified_month": np.where(ch.first_identified >= 0, ch.first_identified, -1),
            "months_in_care": ch.months_in_care,
            "caseworker_changes": ch.worker_changes,
            "withdrawn_before_ready": ch.withdrawn,
            "handed_to_community": ch.handed,
            "intake_wellbeing": np.where(ch.ever_in_care, ch.intake_wellbeing, ch.entry_wellbeing),
            "final_wellbeing": ch.wellbeing,
            "final_stage": pd.Index(STAGES, dtype="str").take(ch.stage),
            "re_exploitation_count": ch.reexploit_count,
            "ever_in_care": ch.ever_in_care,
            "stable_reintegration_month": ch.reintegrated_month,
        })

    def summary(self) -> dict[str, float]:
        """The run summary (definitions in ``docs/ODD.md``, Outputs)."""
        return run_summary(self)

    def staff_roles(self) -> list[str]:
        """Role names of all professionals ever employed."""
        return [ROLES[r] for r in self.staff.role]


def _reporter(name: str):
    return lambda model: model.stats[name]
