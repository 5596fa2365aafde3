"""Reconnect delays: exponential with jitter, so a street of devices does not reconnect in step."""

import random


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before reconnect *attempt* (0-based): a uniform draw from [cap/2, cap].

    ``cap = min(max_s, initial_s * 2**attempt)``; half the cap is kept so a flapping link never
    hammers the broker, the other half is jitter.
    """
    if attempt < 0:
        raise ValueError("attempt: must be >= 0")
    cap = min(max_s, initial_s * 2.0 ** min(attempt, 62))
    return rng.uniform(cap / 2.0, cap)
