"""Agent-based model of children's recovery and reintegration after sexual exploitation.

Synthetic agents; results are scenario explorations, not predictions about real children.
"""

from .agents import STAGES, Child, CommunityLeader, Family, Professional
from .parameters import DEFAULTS, SPECS, ParameterError, Params
from .reintegration import ReintegrationModel
from .run import RunResult, run

__all__ = [
    "STAGES",
    "Child",
    "CommunityLeader",
    "Family",
    "Professional",
    "DEFAULTS",
    "SPECS",
    "ParameterError",
    "Params",
    "ReintegrationModel",
    "RunResult",
    "run",
]

__version__ = "0.1.0"
