"""The four kinds of agent: child, family, community leader and professional.

Each is a Mesa ``Agent`` and lives in its own ``AgentSet`` (``model.agents_by_type``).
An agent's state is stored in the model's arrays (one entry per agent, at ``agent.idx``)
so that the monthly processes can update every agent of a kind at once; the properties
below read and write that state, so code that works with agents one at a time (the
dashboard, tests, a user's own analysis) sees ordinary attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from .reintegration import ReintegrationModel

STAGES = ("exploited", "identified", "in_care", "reintegrating", "reintegrated", "re_exploited")
EXPLOITED, IDENTIFIED, IN_CARE, REINTEGRATING, REINTEGRATED, RE_EXPLOITED = range(len(STAGES))
ROLES = ("caseworker", "counsellor", "community_worker")
CASEWORKER, COUNSELLOR, COMMUNITY_WORKER = range(len(ROLES))


def _state(array: str, doc: str, cast=float) -> property:
    """A property backed by ``model.<kind>.<array>[self.idx]``."""

    def get(self):
        return cast(getattr(self._store, array)[self.idx])

    def set_(self, value):
        getattr(self._store, array)[self.idx] = value

    return property(get, set_, doc=doc)


class _ArrayAgent(mesa.Agent):
    """An agent whose state lives at index ``idx`` of a store of arrays."""

    store_name = ""

    def __init__(self, model: ReintegrationModel, idx: int) -> None:
        super().__init__(model)
        self.idx = idx

    @property
    def _store(self):
        return getattr(self.model, self.store_name)


class Child(_ArrayAgent):
    """A child who has been sexually exploited (synthetic; no personal data)."""

    store_name = "children"
    wellbeing = _state("wellbeing", "Psychosocial wellbeing, 0-1.")
    resilience = _state("resilience", "Own coping capacity, 0-1.")
    skills = _state("skills", "Skills and independence (school, livelihood), 0-1.")
    severe_trauma = _state("severe_trauma", "Severe trauma needing specialist care.", bool)
    is_boy = _state("boy", "Gender: True for a boy.", bool)
    age_at_entry = _state("age_at_entry", "Age (years) on entering exploitation.", int)
    household = _state("household", "Index of the child's own family.", int)
    bond = _state("bond", "Bond with the assigned worker, 0-1.")
    months_in_stage = _state("months_in_stage", "Months in the current stage.", int)
    caseworker_changes = _state("worker_changes", "Changes of assigned worker.", int)
    withdrawn_before_ready = _state("withdrawn", "Support withdrawn before readiness.", bool)
    re_exploitation_count = _state("reexploit_count", "Times re-exploited.", int)

    @property
    def stage(self) -> str:
        """Current stage name."""
        return STAGES[self._store.stage[self.idx]]

    @property
    def family(self) -> Family:
        """The child's own family agent."""
        return self.model.family_agents[self._store.household[self.idx]]

    @property
    def caseworker(self) -> Professional | None:
        """The assigned worker, if any."""
        w = int(self._store.caseworker[self.idx])
        return self.model.staff_agents[w] if w >= 0 else None


class Family(_ArrayAgent):
    """A household: a child's family or another household carrying community attitudes."""

    store_name = "families"
    acceptance = _state("acceptance", "Acceptance of the child (vs blame and shame), 0-1.")
    resources = _state("resources", "Economic resources, 0-1 (low is poverty).")
    stigma = _state("stigma", "Members' stigma belief, 0-1.")
    counselled = _state("counselled", "Receives counselling this month.", bool)
    economic_support = _state("supported", "Receives economic support this month.", bool)
    dependency = _state("dependency", "Dependency on economic support, 0-1.")
    committee_member = _state("committee", "Volunteers on the community care committee.", bool)

    @property
    def community(self) -> int:
        """Community index."""
        return int(self.model.network.community[self.idx])


class CommunityLeader(_ArrayAgent):
    """A community or religious leader: a norm-setter and hub of the network."""

    store_name = "leaders"
    stigma = _state("stigma", "Stigma belief, 0-1.")
    influence = _state("influence", "Weight as a norm-setter.")
    trained = _state("trained", "Trained by the community programme.", bool)
    committee_member = _state("committee", "Member of the community care committee.", bool)

    @property
    def community(self) -> int:
        """Community index."""
        return int(self.model.network.community[self.model.network.n_households + self.idx])


class Professional(_ArrayAgent):
    """A caseworker, psychosocial counsellor or community worker employed by the programme."""

    store_name = "staff"
    specialist = _state("specialist", "Specialist (True) or generic (False).", bool)
    skill = _state("skill", "Skill, 0-1; grows with experience.")
    caseload = _state("caseload", "Children currently assigned.", int)
    burnout = _state("burnout", "Burn-out, 0-1.")
    has_left = _state("left", "Has left the programme (resigned or contract ended).", bool)
    community_index = _state("community", "Community served (community workers).", int)

    @property
    def role(self) -> str:
        """Role name."""
        return ROLES[self._store.role[self.idx]]
