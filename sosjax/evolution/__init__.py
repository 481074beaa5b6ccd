"""Evolution engine: MO-MFEA over binary masks, with NSGA-II survival.

This package sees only masks and objectives; it imports no model or data code.
"""

from sosjax.evolution.hypervolume import hypervolume
from sosjax.evolution.momfea import MOMFEA, MOMFEAParams, MOMFEAState
from sosjax.evolution.nsga2 import (
    crowding_distance,
    non_dominated_ranks,
    nsga2_select,
    rank_and_crowd,
    survival_order,
)
from sosjax.evolution.operators import (
    CROSSOVER_KINDS,
    binary_tournament,
    bit_flip_mutation,
    crossover,
    two_point_crossover,
    uniform_crossover,
)
from sosjax.evolution.population import RepairFn, initial_population, repair_all
from sosjax.evolution.rmp import bernoulli_log_probabilities, cross_log_likelihoods, fit_rmp, learn_rmp

__all__ = [
    "CROSSOVER_KINDS",
    "MOMFEA",
    "MOMFEAParams",
    "MOMFEAState",
    "RepairFn",
    "bernoulli_log_probabilities",
    "binary_tournament",
    "bit_flip_mutation",
    "cross_log_likelihoods",
    "crossover",
    "crowding_distance",
    "fit_rmp",
    "hypervolume",
    "initial_population",
    "learn_rmp",
    "non_dominated_ranks",
    "nsga2_select",
    "rank_and_crowd",
    "repair_all",
    "survival_order",
    "two_point_crossover",
    "uniform_crossover",
]
