"""vjepa2_ac.planners: CEM / MPPI / gradient / random-shooting planners, world-model energies, the
lockstep MPC loop with its policies (world model, simulator oracle, random actions) and sub-goals, how a
planned token step is executed, energy landscapes and the planning benchmark.

See ``docs/planning.md``. The MPC loop lives in :mod:`vjepa2_ac.planners.lockstep` (its oracle uses MuJoCo).
"""

from vjepa2_ac.planners.base import ActionSpace, NonFiniteEnergyError, Planner, PlanResult, shift_plan
from vjepa2_ac.planners.cem import CEM, CEMConfig
from vjepa2_ac.planners.energy import (
    WorldModelEnergy,
    latent_distance,
    preprocess_images,
)
from vjepa2_ac.planners.execution import TokenTracker, control_actions
from vjepa2_ac.planners.gradient import GradientConfig, GradientPlanner
from vjepa2_ac.planners.landscape import Landscape, energy_landscape, plot_landscape
from vjepa2_ac.planners.mppi import MPPI, MPPIConfig
from vjepa2_ac.planners.random_shooting import RandomShooting, RandomShootingConfig

__all__ = [
    "ActionSpace",
    "NonFiniteEnergyError",
    "Planner",
    "PlanResult",
    "shift_plan",
    "CEM",
    "CEMConfig",
    "MPPI",
    "MPPIConfig",
    "GradientPlanner",
    "GradientConfig",
    "RandomShooting",
    "RandomShootingConfig",
    "WorldModelEnergy",
    "latent_distance",
    "preprocess_images",
    "TokenTracker",
    "control_actions",
    "Landscape",
    "energy_landscape",
    "plot_landscape",
]
