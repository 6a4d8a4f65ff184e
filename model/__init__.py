"""Agent-based model of the recovery and reintegration of children who have survived
sexual exploitation and trafficking (synthetic agents; scenario explorations only).
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
