"""A fixed random subsample, shared by every stage that caps how many images it uses or shows."""

import numpy as np

# Figures that cap how many images they show draw the same subsample for every run of a
# sweep (and the same as the metrics' at equal caps), so runs compare like with like.
SUBSAMPLE_RANDOM_STATE = 0


def fixed_subsample(n_points: int, max_images: int, random_state: int = SUBSAMPLE_RANDOM_STATE) -> np.ndarray:
    """Sorted indices of at most ``max_images`` points: all of them, or a fixed random subsample."""
    if n_points <= max_images:
        return np.arange(n_points)
    return np.sort(np.random.default_rng(random_state).choice(n_points, size=max_images, replace=False))


def subsample_note(shown: int, total: int, key: str, what: str = "images") -> str | None:
    """Says that a figure shows a random subsample of ``what`` (None when it shows every image)."""
    if shown >= total:
        return None
    return f"showing a random {shown:,} of {total:,} {what} (fixed subsample; {key})"
