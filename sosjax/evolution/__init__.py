"""Evolution engine: MO-MFEA over binary masks, with NSGA-II survival.

This package sees only masks and objectives; it imports no model or data code.
"""

from sosjax.evolution.bits import pack_bits, unpack_bits
from sosjax.evolution.hypervolume import hypervolume
from sosjax.evolution.momfea import MOMFEA, MOMFEAParams, MOMFEAState
from sosjax.evolution.nsga2 import (
    crowding_distance,
    non_dominated_ranks,
    nsga2_select,
    rank_and_crowd,
    rank_and_crowd_groups,
    survival_order,
)
from sosjax.evolution.operators import (
    CROSSOVER_KINDS,
    binary_tournament,
    bit_flip_mutation,
    crossover,
    crossover_words,
    mutation_words,
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
    "crossover_words",
    "crowding_distance",
    "fit_rmp",
    "hypervolume",
    "initial_population",
    "learn_rmp",
    "mutation_words",
    "non_dominated_ranks",
    "nsga2_select",
    "pack_bits",
    "rank_and_crowd",
    "rank_and_crowd_groups",
    "repair_all",
    "survival_order",
    "two_point_crossover",
    "uniform_crossover",
    "unpack_bits",
]
