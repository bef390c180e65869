"""PCA: the first two principal components of the prepared input (exact SVD, signs fixed by
scikit-learn), one deterministic map per feature set."""

import numpy as np

from .base import Axis, MapMethod

# A PCA map is its first two components: the one value of its one setting.
PCA_COMPONENTS = 2


def pca_embedding(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``X`` (N x 2 float64) and the share of X's variance each
    explains. Exact (full SVD), so deterministic; a one-dimensional X gets a zero second axis."""
    from sklearn.decomposition import PCA

    n_components = min(PCA_COMPONENTS, *X.shape)
    pca = PCA(n_components=n_components, svd_solver="full")
    coords = np.zeros((len(X), PCA_COMPONENTS))
    coords[:, :n_components] = pca.fit_transform(X)
    ratio = np.zeros(PCA_COMPONENTS)
    ratio[:n_components] = pca.explained_variance_ratio_
    return coords, ratio


class PCAMap(MapMethod):
    def warm_up(self):
        import sklearn.decomposition  # noqa: F401  (before the clock starts)

        return {}

    def compute(self, X, settings, options, threads, shared):
        coords, ratio = pca_embedding(X)
        return coords, {"explained_variance_ratio": [float(r) for r in ratio]}


METHOD = PCAMap(
    name="pca",
    title="PCA",
    colour="#832db6",
    axes=(Axis("components", int, "PCs", value=PCA_COMPONENTS),),
    requires=("sklearn",),
)
