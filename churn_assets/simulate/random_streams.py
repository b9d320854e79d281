"""Independent random streams keyed by seed, purpose and day.

Each day draws from its own generator, so the numbers of a day do not depend on how many days a
run covers or where a block of days starts. The same seed therefore gives the same shop whether
it is simulated in one run or continued with `append_days`.
"""

import numpy as np

TRAITS = 0
TRANSITIONS = 1
EVENTS = 2
OFFERS = 3


def day_generator(seed: int, stream: int, day: int = 0) -> np.random.Generator:
    """Return the generator of one stream on one day."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, day])))
