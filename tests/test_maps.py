"""UMAP and PCA beside t-SNE: a run's identity across methods, the maps themselves (UMAP on the sweep's
k-NN graph, bitwise repeatable with a seed; PCA's first two components), the config's one-line refusals,
and a real workflow run of all three methods whose settings rerun only their own maps."""

import copy
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from snakemake.utils import validate

from conftest import REPO, SCHEMA, TINY, planned_jobs, snakemake, with_changes, with_set_changes
from tsne_atlas.config import check_config as check_whole_config
from tsne_atlas.config import runs_at_seed, sweep_runs
from tsne_atlas.files.runs import (
    METHODS,
    PARAMS_PATTERNS,
    parse_params,
    read_embedding,
    read_meta,
    run_label,
    run_name,
    run_params,
    run_sort_key,
)
from tsne_atlas.jobs import AtlasError
from tsne_atlas.maps import run_map
from tsne_atlas.methods.pacmap import pacmap_embedding
from tsne_atlas.methods.pca import pca_embedding
from tsne_atlas.methods.umap import umap_embedding, umap_graph_neighbours, umap_knn
from tsne_atlas.preparation import nearest_neighbours
from tsne_atlas.schema import feature_set_defaults


def blobs(n_per_class=60, dim=20, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, size=(n_classes, dim))
    X = np.concatenate([c + rng.normal(0, 1, size=(n_per_class, dim)) for c in centres])
    return X, np.repeat(np.arange(n_classes), n_per_class)


def check_config(config):
    check_whole_config(config, feature_set_defaults(SCHEMA))


def validated(config):
    config = copy.deepcopy(config)
    validate(config, schema=str(SCHEMA))
    return config


# --- identity --------------------------------------------------------------------------------


def test_each_methods_run_name_round_trips_and_matches_only_its_own_rule():
    runs = {
        "tsne": {"perplexity": 7.5, "seed": 2},
        "umap": {"n_neighbors": 15, "min_dist": 0.1, "seed": 0},
        "pca": {"components": 2},
        "pacmap": {"n_neighbors": 10, "seed": 3},
    }
    names = {method: run_params(method, settings) for method, settings in runs.items()}
    assert names == {
        "tsne": "perplexity-7.5_seed-2",
        "umap": "n_neighbors-15_min_dist-0.1_seed-0",
        "pca": "components-2",
        "pacmap": "n_neighbors-10_seed-3",
    }
    for method, name in names.items():
        assert parse_params(method, name) == runs[method]
        # Each method's run names match its own pattern only: no two methods can claim one file.
        assert [m for m in METHODS if re.fullmatch(PARAMS_PATTERNS[m], name)] == [method]
        assert run_name({"features": "net", "method": method, **runs[method]}) == f"net/{method}/{name}"
    with pytest.raises(AtlasError, match="'perplexity-5' is not a UMAP run's name"):
        parse_params("umap", "perplexity-5")
    metas = [{"features": "net", "method": m, **s} for m, s in runs.items()]
    assert [run_label(m) for m in metas] == [
        "t-SNE perplexity 7.5, seed 2",
        "UMAP n_neighbors 15, min_dist 0.1, seed 0",
        "PCA",
        "PaCMAP n_neighbors 10, seed 3",
    ]
    assert [run_label(m, short=True) for m in metas] == [
        "t-SNE p=7.5 s=2",
        "UMAP k=15 d=0.1 s=0",
        "PCA",
        "PaCMAP k=10 s=3",
    ]
    # Tables and figures: t-SNE, then UMAP, PCA, PaCMAP, whatever order they come in.
    assert [m["method"] for m in sorted(reversed(metas), key=run_sort_key)] == ["tsne", "umap", "pca", "pacmap"]


def test_the_metrics_plot_says_what_each_shown_methods_short_setting_names_mean():
    from tsne_atlas.metrics_plot import settings_key_label

    assert settings_key_label(["tsne", "umap", "pca", "pacmap"]) == (
        "p = perplexity (t-SNE); k = n_neighbors, d = min_dist (UMAP); k = n_neighbors (PaCMAP)"
    )
    # Only the methods shown; PCA has no setting to explain.
    assert settings_key_label(["pca", "pacmap"]) == "k = n_neighbors (PaCMAP)"


def test_the_sweep_lists_every_methods_runs_and_umap_seeds_default_to_tsnes(demo_root):
    config = validated({"dataset": {"root": str(demo_root)}, "methods": ["pca", "umap", "tsne"]})
    config["tsne"]["perplexities"], config["umap"]["min_dist"] = [30, 5], [0.1, 0.5]
    runs = sweep_runs(config)
    assert [run["params"] for run in runs] == [
        *[f"perplexity-{p}_seed-{s}" for p in (5, 30) for s in (0, 1, 2)],
        *[f"n_neighbors-15_min_dist-{d}_seed-{s}" for d in (0.1, 0.5) for s in (0, 1, 2)],
        "components-2",
    ]
    config["umap"]["seeds"] = [7]
    runs = sweep_runs(config)
    assert {run["seed"] for run in runs if run["method"] == "umap"} == {7}
    # The comparison sheet's runs at seed 1: t-SNE's at 1, UMAP's at its only seed, and PCA.
    assert [(r["method"], r.get("seed")) for r in runs_at_seed(runs, 1)] == [
        ("tsne", 1),
        ("tsne", 1),
        ("umap", 7),
        ("umap", 7),
        ("pca", None),
    ]
    assert [r["method"] for r in sweep_runs({**config, "methods": ["tsne"]})] == ["tsne"] * 6


def test_umap_reads_the_sweeps_graph_when_it_holds_enough_neighbours():
    assert umap_graph_neighbours([15], sweep_k=150) == 150  # the default sweep: k = 3 x 50
    assert umap_graph_neighbours([5, 31], sweep_k=30) == 30  # 30 others + the point itself
    assert umap_graph_neighbours([5, 32], sweep_k=30) == 31  # a graph of UMAP's own


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"methods": ["tsne", "umapp"]}, "methods.1: 'umapp' is not one of ['tsne', 'umap', 'pca', 'pacmap']"),
        ({"methods": []}, "methods: [] should be non-empty"),
        ({"umap": {"min_dist": [1.5]}}, "umap.min_dist.0: 1.5 is greater than the maximum of 1"),
        ({"umap": {"min_dist": [-0.1]}}, "umap.min_dist.0: -0.1 is less than the minimum of 0"),
        ({"umap": {"n_neighbors": [1]}}, "umap.n_neighbors.0: 1 is less than the minimum of 2"),
    ],
)
def test_bad_method_settings_are_one_line_schema_errors(demo_root, patch, expected):
    from tsne_atlas.schema import schema_error_line

    assert schema_error_line({"dataset": {"root": str(demo_root)}, **patch}, SCHEMA) == (
        f"{expected}; see docs/configuration.md"
    )


def test_more_umap_neighbours_than_images_is_refused_naming_the_key(demo_root):
    config = validated({"dataset": {"root": str(demo_root)}, "sample": {"n_images": 40}, "methods": ["umap"]})
    config["umap"]["n_neighbors"] = [15, 41]
    with pytest.raises(AtlasError) as err:
        check_config(config)
    assert str(err.value) == (
        "umap.n_neighbors: 41 is more than the sample's 40 images; use values up to 40 or raise sample.n_images"
    )
    config["umap"]["n_neighbors"] = [40]
    check_config(config)
    # Without t-SNE among the methods its perplexities are not checked against the sample.
    config["tsne"]["perplexities"] = [50]
    check_config(config)


@pytest.mark.workflow
def test_bad_method_settings_stop_the_workflow_before_any_job(tmp_path):
    """Through Snakemake itself: one line on stderr, nothing run."""
    cases = [
        (with_changes(TINY, "umap", n_neighbors=[41]), "umap.n_neighbors: 41 is more than the sample's 40 images"),
        (
            {**TINY, "methods": ["tsne", "isomap"]},
            "methods.1: 'isomap' is not one of ['tsne', 'umap', 'pca', 'pacmap']",
        ),
    ]
    for config, expected in cases:
        if "n_neighbors" in config.get("umap", {}):
            config = {**config, "methods": ["tsne", "umap"]}
        result = snakemake(tmp_path, "--dry-run", config=config)
        assert result.returncode != 0
        assert result.stderr.strip().startswith(f"tsne-atlas: config error: {expected}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


# --- the maps --------------------------------------------------------------------------------


def test_umap_knn_puts_each_point_first_and_keeps_n_neighbors_columns():
    X, _ = blobs(n_per_class=10)
    indices, distances = nearest_neighbours(X, 6)
    knn_indices, knn_distances = umap_knn(indices, distances, n_neighbors=4)
    assert knn_indices.shape == knn_distances.shape == (30, 4)
    assert (knn_indices[:, 0] == np.arange(30)).all() and (knn_distances[:, 0] == 0).all()
    np.testing.assert_array_equal(knn_indices[:, 1:], indices[:, :3])
    with pytest.raises(AtlasError, match="needs 9 neighbours but the graph has 6"):
        umap_knn(indices, distances, n_neighbors=10)


@pytest.mark.slow
def test_umap_with_a_seed_is_bitwise_repeatable_and_separates_blobs():
    from tsne_atlas.metrics import knn_accuracy

    X, labels = blobs()
    knn = nearest_neighbours(X, 20)
    first = umap_embedding(X, 15, 0.1, 0, knn=knn)
    again = umap_embedding(X, 15, 0.1, 0, knn=knn)
    assert first.shape == (180, 2) and first.dtype == np.float64
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, umap_embedding(X, 15, 0.1, 1, knn=knn))
    assert knn_accuracy(first, labels) == 1.0
    # The precomputed graph is the graph umap-learn would build itself: the same quality.
    own = umap_embedding(X, 15, 0.1, 0)
    assert knn_accuracy(own, labels) == 1.0


@pytest.mark.slow
def test_umap_lays_out_the_graph_it_is_given_not_one_of_its_own():
    """A valid graph that is not X's: the k-NN graph of points whose blobs are a shuffle of X's labels.
    The map is umap-learn's own fit with that graph as precomputed_knn, bit for bit, and its clusters
    are the graph's, not X's."""
    import umap

    from tsne_atlas.metrics import knn_accuracy

    X, labels = blobs()
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(labels)  # each point's blob in the given graph
    Z = rng.normal(0, 8, size=(3, X.shape[1]))[shuffled] + rng.normal(0, 1, size=X.shape)
    indices, distances = nearest_neighbours(Z, 20)
    coords = umap_embedding(X, 15, 0.1, 0, knn=(indices, distances))
    given = (np.hstack([np.arange(180)[:, None], indices[:, :14]]), np.hstack([np.zeros((180, 1)), distances[:, :14]]))
    reference = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1, precomputed_knn=(*given, None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        np.testing.assert_array_equal(coords, reference.fit_transform(X))
    assert knn_accuracy(coords, shuffled) == 1.0 and knn_accuracy(coords, labels) < 0.6
    assert not np.array_equal(coords, umap_embedding(X, 15, 0.1, 0))


def test_pca_map_is_the_first_two_principal_components():
    X, _ = blobs()
    coords, ratio = pca_embedding(X)
    centred = X - X.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = eigenvectors[:, ::-1][:, :2]
    # The same axes up to sign, and the variance they hold.
    np.testing.assert_allclose(np.abs(coords), np.abs(centred @ top), atol=1e-8)
    np.testing.assert_allclose(ratio, eigenvalues[::-1][:2] / eigenvalues.sum(), rtol=1e-8)
    np.testing.assert_array_equal(coords, pca_embedding(X.copy())[0])  # deterministic, signs included
    flat, flat_ratio = pca_embedding(X[:, :1])
    assert flat.shape == (180, 2) and (flat[:, 1] == 0).all() and flat_ratio[1] == 0


@pytest.mark.slow
def test_pacmap_is_the_official_fit_bitwise_repeatable_across_processes_and_thread_counts(tmp_path):
    """PaCMAP with a seed: the package's own fit of the input, the same bytes in two processes with
    different numba thread counts; another seed gives another map; the blobs stay apart."""
    import pacmap

    X, labels = blobs()
    coords = pacmap_embedding(X, 10, 0, "pca")
    official = pacmap.PaCMAP(n_components=2, n_neighbors=10, MN_ratio=0.5, FP_ratio=2.0, random_state=0)
    np.testing.assert_array_equal(coords, official.fit_transform(X.astype(np.float32), init="pca"))
    assert not np.array_equal(coords, pacmap_embedding(X, 10, 1, "pca"))
    assert not np.array_equal(coords, pacmap_embedding(X, 10, 0, "pca", mn_ratio=2.0))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np; from tsne_atlas.methods.pacmap import pacmap_embedding; "
        f"np.save(sys.argv[1], pacmap_embedding(np.load({str(tmp_path / 'X.npy')!r}), 10, 0, 'pca'))"
    )
    for threads in ("1", "2"):
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"{threads}.npy")],
            check=True,
            capture_output=True,
            cwd=str(REPO / "scripts"),
            env={**os.environ, "NUMBA_NUM_THREADS": threads},
        )
        np.testing.assert_array_equal(np.load(tmp_path / f"{threads}.npy"), coords)
    centroids = np.array([coords[labels == k].mean(axis=0) for k in range(3)])
    spread = max(np.linalg.norm(coords[labels == k] - centroids[k], axis=1).mean() for k in range(3))
    assert min(np.linalg.norm(centroids[i] - centroids[j]) for i in range(3) for j in range(i + 1, 3)) > 2 * spread


def test_pacmap_neighbours_must_be_fewer_than_the_images_and_settings_are_schema_checked(demo_root):
    from tsne_atlas.schema import schema_error_line

    config = validated({"dataset": {"root": str(demo_root)}, "sample": {"n_images": 40}, "methods": ["pacmap"]})
    assert config["pacmap"] == {"n_neighbors": [10], "mn_ratio": 0.5, "fp_ratio": 2.0, "init": "pca", "seeds": None}
    config["pacmap"]["n_neighbors"] = [10, 40]
    with pytest.raises(AtlasError) as err:
        check_config(config)
    assert str(err.value) == (
        "pacmap.n_neighbors: 40 is not fewer than the sample's 40 images; use values below 40 or raise sample.n_images"
    )
    config["pacmap"]["n_neighbors"] = [39]
    check_config(config)
    # Null seeds are t-SNE's; given seeds are its own.
    assert [run["params"] for run in sweep_runs(config)] == [f"n_neighbors-39_seed-{s}" for s in (0, 1, 2)]
    config["pacmap"]["seeds"] = [5]
    assert [run["params"] for run in sweep_runs(config)] == ["n_neighbors-39_seed-5"]
    assert schema_error_line({"dataset": {"root": str(demo_root)}, "pacmap": {"fp_ratio": 0}}, SCHEMA) == (
        "pacmap.fp_ratio: 0 is less than or equal to the minimum of 0; see docs/configuration.md"
    )


def test_a_sample_too_small_for_pacmaps_pairs_is_refused_by_the_packages_own_rule(demo_root):
    """pacmap shrinks its pairs to fit a small sample and fails when none is left (a traceback from inside a
    job); the config check refuses that sample in one line first, by the rule pacmap itself applies."""
    import pacmap

    from tsne_atlas.methods.pacmap import pair_counts

    for n in range(2, 30):
        for k in (1, 2, 5, 10):
            for mn_ratio, fp_ratio in ((0.5, 2.0), (1.0, 1.0), (0.2, 5.0), (2.0, 0.3)):
                if k >= n:
                    continue
                model = pacmap.PaCMAP(n_neighbors=k, MN_ratio=mn_ratio, FP_ratio=fp_ratio)
                counts = pair_counts(n, k, mn_ratio, fp_ratio)
                try:
                    model.decide_num_pairs(n)
                except ValueError:
                    assert counts[0] < 1 or counts[2] < 1, (n, k, mn_ratio, fp_ratio)
                else:
                    assert counts == (model.n_neighbors, model.n_MN, model.n_FP), (n, k, mn_ratio, fp_ratio)
    config = validated({"dataset": {"root": str(demo_root)}, "sample": {"n_images": 3}, "methods": ["pacmap"]})
    config["pacmap"]["n_neighbors"] = [2]
    with pytest.raises(AtlasError) as err:
        check_config(config)
    assert str(err.value) == (
        "pacmap: 3 images are too few for PaCMAP's pairs (n_neighbors 2, mn_ratio 0.5, fp_ratio 2); "
        "raise sample.n_images or remove pacmap from methods"
    )
    config["sample"]["n_images"] = 4
    check_config(config)


def test_every_declared_method_is_a_schema_choice_with_a_section_holding_its_settings():
    """The schema's methods enum is MAP_METHODS, and each method's section has the lists its axes read,
    its options and its threads key: a module without its schema part (or the reverse) fails here."""
    import yaml

    from tsne_atlas.methods import MAP_METHODS

    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    assert schema["methods"]["items"]["enum"] == list(MAP_METHODS)
    for name, method in MAP_METHODS.items():
        keys = set(schema.get(name, {}).get("properties", {}))
        needed = {axis.config_key for axis in method.axes if not axis.fixed} | set(method.options)
        needed |= {method.threads_key} - {None}
        assert needed <= keys, f"{name}: the schema's {name} section lacks {sorted(needed - keys)}"


def test_map_modules_do_not_import_torch():
    """A map job imports its module and umap-learn (or scikit-learn), never torch: they start fast."""
    code = "import sys, tsne_atlas.maps, tsne_atlas.methods.umap, umap, sklearn.decomposition; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(REPO / "scripts")
    )
    assert out.stdout.strip() == "False"


# --- the workflow ----------------------------------------------------------------------------

# One feature set, one map per method (t-SNE at perplexity 5, UMAP with 10 neighbours, PCA, PaCMAP with
# 5), seed 0.
METHODS_CONFIG = {
    **with_set_changes(with_changes(TINY, "tsne", perplexities=[5], seeds=[0]), nodes=["penultimate"]),
    "methods": ["tsne", "umap", "pca", "pacmap"],
    "umap": {"n_neighbors": [10]},
    "pacmap": {"n_neighbors": [5]},
}
RUNS = (
    "tsne/perplexity-5_seed-0",
    "umap/n_neighbors-10_min_dist-0.1_seed-0",
    "pca/components-2",
    "pacmap/n_neighbors-5_seed-0",
)
SPANNING = {"sweep_metrics": 1, "sweep_overview": 1, "explorer": 1, "all": 1}


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory):
    """The four methods run to the end, with numba's cache at the workflow's default place (a copy of the
    tests' shared one where it exists, so no test pays a cold compile)."""
    workdir = tmp_path_factory.mktemp("methods")
    shared = Path(os.environ["NUMBA_CACHE_DIR"])
    if shared.is_dir():
        shutil.copytree(shared, workdir / "results" / ".numba-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("NUMBA_CACHE_DIR")
        result = snakemake(workdir, config=METHODS_CONFIG)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.workflow
def test_every_method_gets_every_per_run_output_and_the_sweep_figures_show_them_all(methods_run):
    out = methods_run / "results"
    features_id = "resnet18"
    for run in RUNS:
        for path in (
            f"embeddings/{features_id}/{run}.tsv",
            f"scatter/{features_id}/{run}.png",
            f"scatter/{features_id}/{run}.svg",
            f"mosaic/{features_id}/{run}.png",
            f"grid_mosaic/{features_id}/{run}.png",
            f"metrics/{features_id}/{run}.json",
        ):
            assert (out / path).stat().st_size > 0, path
    metas = {run: read_meta(out / "embeddings" / features_id / f"{run}.json") for run in RUNS}
    assert [meta["method"] for meta in metas.values()] == ["tsne", "umap", "pca", "pacmap"]
    assert metas[RUNS[1]]["precomputed_knn"] is True and metas[RUNS[1]]["kl_divergence"] is None
    assert metas[RUNS[2]]["seed"] is None and 0 < sum(metas[RUNS[2]]["explained_variance_ratio"]) < 1
    # One table compares the methods on the same input.
    table = (out / "metrics" / features_id / "sweep.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in table[1:]] == ["tsne", "umap", "pca", "pacmap"]
    assert table[3].startswith("resnet18,pca,n/a,n/a,n/a,n/a,")
    # PaCMAP's settings fill the columns it shares (n_neighbors, seed): no column of its own.
    assert table[0].split(",")[2:6] == ["perplexity", "n_neighbors", "min_dist", "seed"]
    assert table[4].startswith("resnet18,pacmap,n/a,5,n/a,0,")
    assert (metas[RUNS[3]]["mn_ratio"], metas[RUNS[3]]["fp_ratio"], metas[RUNS[3]]["init"]) == (0.5, 2.0, "pca")
    # The explorer's run menu has every map.
    from tsne_atlas.files.explorer_page import read_page_data

    labels = [run["label"] for run in read_page_data(out / "explorer.html")["runs"]]
    assert [label.split(" · ")[1].split(" (")[0] for label in labels] == [
        "t-SNE perplexity 5, seed 0",
        "UMAP n_neighbors 10, min_dist 0.1, seed 0",
        "PCA",
        "PaCMAP n_neighbors 5, seed 0",
    ]
    # numba's cache is where every job can write it: the results folder.
    log = (out / "logs" / "embeddings" / features_id / f"{RUNS[1]}.log").read_text()
    assert f"(cache: {out / '.numba-cache'})" in log
    assert list((out / ".numba-cache").rglob("*.nbi"))


@pytest.mark.workflow
def test_the_workflows_umap_map_is_the_one_of_the_shared_input_and_graph(methods_run):
    """The UMAP job read the sweep's prepared input and k-NN graph: the same map comes out of them in
    this process, bit for bit (a seed makes UMAP repeatable, in any process)."""
    from tsne_atlas.files.map_inputs import read_input, read_neighbours

    shared = methods_run / "results" / "embeddings" / "resnet18"
    X, _ = read_input(shared / "input.h5")
    graph = read_neighbours(shared / "graph" / "k-15.npz")  # the sweep's: 3 x perplexity 5
    _, coords = read_embedding(shared / f"{RUNS[1]}.tsv")
    np.testing.assert_array_equal(coords, umap_embedding(X, 10, 0.1, 0, knn=graph))
    _, pca = read_embedding(shared / f"{RUNS[2]}.tsv")
    np.testing.assert_array_equal(pca, pca_embedding(X)[0])
    _, pacmap = read_embedding(shared / f"{RUNS[3]}.tsv")
    np.testing.assert_array_equal(pacmap, pacmap_embedding(X, 5, 0, "pca"))


@pytest.mark.workflow
def test_umap_settings_rerun_only_umap_maps_and_what_spans_runs(methods_run, tmp_path):
    from test_reruns import rerun_mismatches, schema_leaves

    # UMAP's and PaCMAP's settings, and t-SNE's seeds, which are theirs too while their seeds are null.
    leaves = [
        (s, key, leaf) for s, key, leaf in schema_leaves() if s in ("umap", "pacmap") or (s, key) == ("tsne", "seeds")
    ]
    assert [f"{s}.{key}" for s, key, _ in leaves] == [
        "tsne.seeds",
        *("umap.n_neighbors", "umap.min_dist", "umap.seeds"),
        *("pacmap.n_neighbors", "pacmap.mn_ratio", "pacmap.fp_ratio", "pacmap.init", "pacmap.seeds"),
    ]
    values = {"n_neighbors": [12], "min_dist": [0.3], "seeds": [1]}
    assert rerun_mismatches(methods_run, None, tmp_path, leaves, base=METHODS_CONFIG, values=values) == []
    per_run = {
        "scatter": 1,
        "mosaic": 1,
        "grid_mosaic": 1,
        "embedding_metrics": 1,
        "place_query": 1,
        "query_figures": 1,
    }
    # More neighbours than the sweep's graph holds: UMAP gets a graph of its own, t-SNE keeps its own.
    assert planned_jobs(methods_run, with_changes(METHODS_CONFIG, "umap", n_neighbors=[20])) == {
        "knn_graph": 1,
        "map": 1,
        **per_run,
        **SPANNING,
    }
    # Leaving a method out redoes only what spans runs; the other maps stay.
    assert planned_jobs(methods_run, {**METHODS_CONFIG, "methods": ["tsne", "umap"]}) == SPANNING


def test_a_map_job_refuses_inputs_of_another_sample_or_a_short_graph_in_one_line(tmp_path):
    """A prepared input of another sample, or a graph with fewer neighbours than UMAP needs, stops the job
    with one line naming the file and the fix, and writes no run."""
    from tsne_atlas.files.features import write_features
    from tsne_atlas.files.map_inputs import write_input, write_neighbours

    X, _ = blobs(n_per_class=10)
    features = tmp_path / "f.h5"
    paths = [f"a/{i}.png" for i in range(30)]
    write_features(features, [{"penultimate": X.astype(np.float32)}], 30, paths, {}, {"penultimate": "flatten"})
    attrs = {"standardize": True, "pca_components": 0}
    write_input(tmp_path / "input.h5", X[:29], attrs)
    out = {"embedding": str(tmp_path / "run.tsv"), "meta": str(tmp_path / "run.json")}
    with pytest.raises(AtlasError) as err:
        run_map(str(features), str(tmp_path / "input.h5"), **out, method="pca", features_id="f", node="penultimate",
                settings={"components": 2}, options={}, threads=1)  # fmt: skip
    assert (
        str(err.value)
        == f"{tmp_path / 'input.h5'} has 29 rows but {features} 30; delete {tmp_path / 'input.h5'} and rerun"
    )
    write_input(tmp_path / "input.h5", X, attrs)
    write_neighbours(tmp_path / "k-5.npz", *nearest_neighbours(X, 5))
    with pytest.raises(AtlasError) as err:
        run_map(str(features), str(tmp_path / "input.h5"), **out, method="umap", features_id="f", node="penultimate",
                settings={"n_neighbors": 10, "min_dist": 0.1, "seed": 0}, options={}, threads=1,
                graph=str(tmp_path / "k-5.npz"))  # fmt: skip
    assert str(err.value) == (
        f"{tmp_path / 'k-5.npz'} holds 5 neighbours per image, UMAP with n_neighbors 10 needs 9; delete it and rerun"
    )
    assert not list(tmp_path.glob("run.*"))
