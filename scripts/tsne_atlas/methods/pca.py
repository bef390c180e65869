"""PCA: the first two principal components of the prepared input (exact SVD, signs fixed by
scikit-learn), one deterministic map per feature set. New points are projected on its two axes."""

import numpy as np

from ..jobs import AtlasError
from .base import Axis, MapMethod, placement_neighbours

# A PCA map is its first two components: the one value of its one setting.
PCA_COMPONENTS = 2
# How far a refit of the run's PCA may differ from the run's map, relative to the map's extent: the SVD
# is exact, so a refit differs by rounding alone (a few ulps where BLAS splits its work otherwise); a
# prepared input that is not the run's differs by far more.
REFIT_TOLERANCE = 1e-9


def fit_pca(X: np.ndarray):
    """sklearn's PCA of ``X`` to two components (exact, full SVD) and X's N x 2 float64 coordinates: the
    model and the map; a one-dimensional X gets a zero second axis."""
    from sklearn.decomposition import PCA

    n_components = min(PCA_COMPONENTS, *X.shape)
    pca = PCA(n_components=n_components, svd_solver="full")
    coords = np.zeros((len(X), PCA_COMPONENTS))
    coords[:, :n_components] = pca.fit_transform(X)
    return pca, coords


def pca_embedding(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``X`` (N x 2 float64) and the share of X's variance each
    explains. Exact (full SVD), so deterministic; a one-dimensional X gets a zero second axis."""
    pca, coords = fit_pca(X)
    ratio = np.zeros(PCA_COMPONENTS)
    ratio[: pca.n_components_] = pca.explained_variance_ratio_
    return coords, ratio


def refit_difference(refit: np.ndarray, coords: np.ndarray) -> float:
    """Largest difference between a refitted PCA map and the run's, relative to the map's extent."""
    return float(np.abs(refit - coords).max() / max(float(np.abs(coords).max()), np.finfo(float).tiny))


class PCAMap(MapMethod):
    def warm_up(self):
        import sklearn.decomposition  # noqa: F401  (before the clock starts)

        return {}

    def compute(self, X, settings, options, threads, shared):
        coords, ratio = pca_embedding(X)
        return coords, {"explained_variance_ratio": [float(r) for r in ratio]}

    def place(self, X, coords, Q, neighbours, settings, options, threads, shared):
        """The run's PCA refitted on X (exact, so it is the run's: checked against ``coords``) and Q
        projected with it: a placed point is its features' position on the map's two axes."""
        placement_neighbours(self.name, X, coords, Q, neighbours, 0)
        pca, refit = fit_pca(X)
        difference = refit_difference(refit, coords)
        if not difference <= REFIT_TOLERANCE:
            raise AtlasError(
                f"pca: refitting the run's PCA on the prepared input does not give the run's map (differs by "
                f"{difference:.3g} of its extent): the run and the prepared input disagree; delete the run's map "
                f"and rerun"
            )
        placed = np.zeros((len(Q), PCA_COMPONENTS))
        placed[:, : pca.n_components_] = pca.transform(np.asarray(Q, dtype=np.float64))
        return placed, {"placement": "projection", "refit_difference": difference}


METHOD = PCAMap(
    name="pca",
    title="PCA",
    colour="#832db6",
    axes=(Axis("components", int, "PCs", value=PCA_COMPONENTS),),
    requires=("sklearn",),
    # Measured: 1,784 MiB and 36 s at 1,000,000 images of 50 columns (the input read whole).
    run_bytes_per_image=1_700,
    run_seconds_per_image=0.00004,
)
