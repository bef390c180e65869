"""The prepared input in row blocks (above ``prepare.block_rows`` images): the same z-scoring and PCA as the
whole-matrix code within float tolerance, whatever the block size, with and without each step; today's
code byte for byte up to ``block_rows``; the query set prepared through it; a machine too small refused
in one line before anything is read."""

import h5py
import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from tsne_atlas import preparation as prep
from tsne_atlas.files.features import feature_blocks, features_shape, write_features
from tsne_atlas.files.map_inputs import read_input
from tsne_atlas.jobs import AtlasError, available_memory_bytes

pytestmark = pytest.mark.unit

N, D = 2400, 48
# Largest |blocked - whole| over the whole result's standard deviation. Measured: at most ~5e-11 here (the
# trailing components of the noise lie close together, so summation order moves them most), ~1e-14 with
# PCA off.
TOLERANCE = 1e-9


def features(n=N, dim=D, seed=0) -> np.ndarray:
    """float32 rows of a few directions of decreasing spread plus noise, every column scaled and shifted
    its own way (z-scoring matters), two constant columns."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 8)) * np.geomspace(20, 2, 8)
    X = latent @ rng.standard_normal((8, dim)) + rng.standard_normal((n, dim))
    X = X * np.exp(rng.uniform(-2, 2, dim)) + rng.uniform(0, 100, dim)
    X[:, 5] = 3.25
    X[:, 17] = 0.0
    return X.astype(np.float32)


def write(path, X) -> str:
    write_features(path, [{"penultimate": X}], len(X), [f"c/{i}.png" for i in range(len(X))], {}, {"penultimate": "f"})
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X = features()
    return X, write(tmp_path_factory.mktemp("blocks") / "features.h5", X)


def close(A, B) -> float:
    assert A.shape == B.shape
    return float(np.abs(A - B).max() / A.std())


def test_blocks_read_every_row_once_in_order(data):
    X, path = data
    assert features_shape(path, "penultimate") == X.shape
    starts, rows = [], []
    for start, block in feature_blocks(path, "penultimate", 1000):
        starts.append(start)
        rows.append(block.copy())
    assert starts == [0, 1000, 2000] and [len(r) for r in rows] == [1000, 1000, 400]
    np.testing.assert_array_equal(np.concatenate(rows), X)


@pytest.mark.parametrize("block_rows", [600, 1000, 2399])  # dividing N, not dividing it, a last block of one row
@pytest.mark.parametrize(("standardize", "pca"), [(True, 20), (False, 20), (True, 0), (False, 5)])
def test_blocked_preparation_equals_the_whole_one_within_float_tolerance(data, block_rows, standardize, pca):
    X, path = data
    whole, whole_transform = prep.fit_preparation(X, standardize, pca)
    blocked, transform = prep.fit_preparation_blocks(path, "penultimate", standardize, pca, block_rows)
    assert blocked.dtype == np.float64 and blocked.flags.c_contiguous
    assert close(whole, blocked) < TOLERANCE
    # Every component points the way scikit-learn's sign convention points it (without PCA: every column
    # but the constant ones, 0 in both).
    directions = np.einsum("ij,ij->j", whole, blocked)
    assert (directions > 0).all() if pca else (np.delete(directions, [5, 17]) > 0).all()
    other = features(50, seed=1)
    assert close(whole_transform(other), transform(other)) < TOLERANCE
    if standardize and not pca:
        # Constant columns keep scale 1: 0, not NaN; the others have StandardScaler's mean 0 and std 1.
        assert np.isfinite(blocked).all() and not blocked[:, [5, 17]].any()
        np.testing.assert_allclose(np.delete(blocked, [5, 17], axis=1).std(axis=0), 1, rtol=1e-12)


def test_the_column_moments_are_standard_scalers(data):
    X, path = data
    mean, variance = prep.column_moments(path, "penultimate", 700, *X.shape)
    scaler = StandardScaler().fit(X.astype(np.float64))
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-13)
    np.testing.assert_allclose(variance, scaler.var_, rtol=1e-10, atol=1e-20)
    scale = prep.standard_scale(mean, variance, len(X))
    assert scale[5] == scale[17] == 1.0 and np.allclose(scale, scaler.scale_, rtol=1e-10)


def test_up_to_block_rows_todays_code_runs_byte_for_byte(data, tmp_path, caplog):
    X, path = data
    caplog.set_level("INFO", logger="tsne_atlas.preparation")
    prep.prepare_input(path, "penultimate", True, 20, str(tmp_path / "whole.h5"), block_rows=N)
    whole, _ = read_input(tmp_path / "whole.h5")
    assert np.array_equal(whole, prep.preprocess(X, True, 20))
    assert caplog.messages[-1] == f"prepared input: {N} x {D} -> {N} x 20"
    prep.prepare_input(path, "penultimate", True, 20, str(tmp_path / "blocked.h5"), block_rows=N - 1)
    blocked, attrs = read_input(tmp_path / "blocked.h5")
    assert close(whole, blocked) < TOLERANCE and attrs["pca_components"] == 20 and attrs["n_images"] == N
    assert caplog.messages[-1] == f"prepared input: {N} x {D} -> {N} x 20 (in blocks of {N - 1:,} rows)"
    # Fewer images than dimensions: PCA's full SVD of the whole (smaller than its covariance), whatever block_rows.
    narrow = features(30, dim=64)
    narrow_path = write(tmp_path / "narrow.h5", narrow)
    prep.prepare_input(narrow_path, "penultimate", True, 10, str(tmp_path / "narrow-input.h5"), block_rows=7)
    assert np.array_equal(read_input(tmp_path / "narrow-input.h5")[0], prep.preprocess(narrow, True, 10))


def test_the_query_is_prepared_through_the_blocked_fit(data, tmp_path):
    X, path = data
    # 700 query rows: read and transformed in blocks of 500 too; the first 10 are reference rows.
    Q = np.concatenate([X[:10], features(690, seed=2)])
    query = write(tmp_path / "query.h5", Q)
    prepared = str(tmp_path / "input.h5")
    prep.prepare_input(path, "penultimate", True, 20, prepared, block_rows=500)
    out = str(tmp_path / "query-input.h5")
    attrs = prep.prepare_query(path, query, prepared, "penultimate", True, 20, out, block_rows=500)
    Y, _ = read_input(out)
    X_prepared, _ = read_input(prepared)
    _, whole_transform = prep.fit_preparation(X, True, 20)
    assert attrs["n_images"] == 700 and close(whole_transform(Q), Y) < TOLERANCE
    np.testing.assert_allclose(Y[:10], X_prepared[:10], rtol=0, atol=1e-12 * X_prepared.std())
    # Other blocks sum in another order: that reference input is not this fit's, bit for bit, and is refused.
    with pytest.raises(AtlasError, match=r"input.h5 was not prepared from .*features.h5 with these settings"):
        prep.prepare_query(path, query, prepared, "penultimate", True, 20, out, block_rows=600)


def huge_features(path, n_images: int, dim: int) -> str:
    """A features file of ``n_images`` x ``dim`` whose rows are in an external file that does not exist: its
    shape reads, any row fails to (so a job that starts reading fails at once rather than running on)."""
    with h5py.File(path, "w") as h5:
        external = [(str(path.parent / "never-written.bin"), 0, h5py.h5f.UNLIMITED)]
        dataset = h5.create_dataset("features/penultimate", shape=(n_images, dim), dtype="float32", external=external)
        dataset.attrs["graph_node"] = "flatten"
    return str(path)


def test_a_machine_too_small_is_refused_in_one_line_before_any_row_is_read(tmp_path):
    n_images = 10**9
    assert n_images * 50 * 8 > available_memory_bytes()  # the N x 50 result alone does not fit here
    path = huge_features(tmp_path / "huge.h5", n_images, 2048)
    prepared = tmp_path / "input.h5"
    with pytest.raises(AtlasError) as refused:
        prep.prepare_input(path, "penultimate", True, 50, str(prepared))
    message = str(refused.value)
    assert "\n" not in message and message.startswith("prepare_input needs about ")
    assert "for 1,000,000,000 x 2,048 features" in message and message.endswith("lower prepare.block_rows")
    with pytest.raises(AtlasError) as refused:
        prep.prepare_query(path, path, str(prepared), "penultimate", True, 0, str(tmp_path / "q.h5"))
    message = str(refused.value)
    assert message.startswith("prepare_query needs about ") and message.endswith(
        "lower prepare.block_rows or set prepare.pca_components (without PCA the prepared input alone is "
        "1,000,000,000 x 2,048 float64)"
    )
    assert not prepared.exists() and not (tmp_path / "q.h5").exists()
    # What the job needs in blocks: one block, D x D and the result, far below the whole matrix.
    assert (
        prep.prepare_need_bytes(10**6, 2048, 100_000, 50) < 4 * 2**30 < prep.prepare_need_bytes(10**5, 2048, 10**5, 50)
    )
