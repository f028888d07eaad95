"""vjepa2_ac.planners: CEM / MPPI / gradient / random-shooting planners, world-model energies, MPC,
baselines (simulator oracle, random actions), energy landscapes and the planning benchmark.

See ``docs/planning.md``. The simulator oracle lives in :mod:`vjepa2_ac.planners.baselines` (imports MuJoCo).
"""

from vjepa2_ac.planners.base import ActionSpace, NonFiniteEnergyError, Planner, PlanResult, shift_plan
from vjepa2_ac.planners.cem import CEM, CEMConfig
from vjepa2_ac.planners.energy import (
    WorldModelEnergy,
    WorldModelObjective,
    latent_distance,
    preprocess_images,
)
from vjepa2_ac.planners.gradient import GradientConfig, GradientPlanner
from vjepa2_ac.planners.landscape import Landscape, energy_landscape, plot_landscape
from vjepa2_ac.planners.mpc import MPCConfig, MPCResult, MPCStep, SubGoal, run_mpc
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
    "WorldModelObjective",
    "latent_distance",
    "preprocess_images",
    "MPCConfig",
    "MPCResult",
    "MPCStep",
    "SubGoal",
    "run_mpc",
    "Landscape",
    "energy_landscape",
    "plot_landscape",
]
