"""The rule adapter: a rule's named input, output and params become a stage function's keyword arguments."""

import pytest

from conftest import rule_job
from tsne_atlas.jobs import AtlasError, available_memory_bytes, check_memory, rule_arguments, run_rule


def stage(manifest: str, root: str, n_images: int, out: str, threads: int = 1) -> dict:
    return {"manifest": manifest, "root": root, "n_images": n_images, "out": out, "threads": threads}


def job(tmp_path, extra_input: dict | None = None, **params):
    """A job of rule ``demo``: input manifest (and ``extra_input``), output out, params root and n_images."""
    return rule_job(
        "demo",
        input={"manifest": "m.csv", **(extra_input or {})},
        output={"out": "o.h5"},
        params={"root": "data", "n_images": 5, **params},
        log=str(tmp_path / "logs" / "demo.log"),
        threads=3,
    )


def test_named_files_params_and_threads_become_keyword_arguments(tmp_path):
    assert run_rule(job(tmp_path), stage) == {
        "manifest": "m.csv", "root": "data", "n_images": 5, "out": "o.h5", "threads": 3,
    }  # fmt: skip
    assert (tmp_path / "logs" / "demo.log").exists()  # the job's log is opened for it


def test_threads_only_for_functions_that_take_them_and_lists_as_plain_lists(tmp_path):
    def no_threads(manifest, sweep, root, n_images, out):
        return sweep

    arguments = rule_arguments(job(tmp_path, {"sweep": ["a.tsv", "b.tsv"]}), no_threads)
    assert "threads" not in arguments and arguments["sweep"] == ["a.tsv", "b.tsv"]
    assert type(arguments["sweep"]) is list


def test_a_name_the_function_does_not_take_or_a_name_given_twice_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"rule demo: stage\(\) takes no argument\(s\) \['colour'\]"):
        rule_arguments(job(tmp_path, colour="red"), stage)
    with pytest.raises(TypeError, match="rule demo: 'out' is given twice"):
        rule_arguments(job(tmp_path), stage, out="elsewhere.h5")


def test_memory_check_refuses_a_need_beyond_the_machine_in_one_line():
    available = available_memory_bytes()
    assert 0 < available <= 2**50  # read off this machine (MemAvailable, or its cgroup's room)
    check_memory("prepare_input", 2**20, "a test", "lower nothing")  # 1 MiB fits anywhere
    with pytest.raises(AtlasError) as refused:
        check_memory("prepare_input", available + 2**30, "1,000 x 2,048 features", "lower prepare.block_rows")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("prepare_input needs about ") and message.endswith("lower prepare.block_rows")
    assert "1,000 x 2,048 features" in message and "GiB is available" in message
