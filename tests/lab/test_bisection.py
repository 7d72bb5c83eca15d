"""Bisect attribution: the search itself (pure), git range errors, and end to end on the sample repository."""

from __future__ import annotations

import math
import sys

import pytest

from workbench.lab import Variant, bisect, make_sample_repo
from workbench.lab.bisection import bisect_variants, first_true
from workbench.lab.errors import LabError
from workbench.lab.settings import LabSettings


@pytest.mark.parametrize("n", range(1, 12))
def test_first_true_finds_every_culprit_in_about_log2_probes(n):
    for culprit in range(n):
        calls: list[int] = []
        assert first_true(n, lambda i, c=culprit, seen=calls: seen.append(i) or i >= c) == culprit
        assert len(calls) <= 1 + math.ceil(math.log2(n)) if n > 1 else len(calls) == 1
        assert calls[0] == n - 1  # BAD is verified first


def test_first_true_reports_no_culprit_when_bad_is_fine():
    calls: list[int] = []
    assert first_true(5, lambda i: calls.append(i) or False) is None
    assert calls == [4]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample_repo(tmp_path_factory.mktemp("lab") / "repo")


def test_bisect_refuses_a_range_in_the_wrong_order(sample):
    with pytest.raises(LabError, match=r"is not an ancestor of BAD") as info:
        bisect(sample.path, sample.bad, sample.good, sample.command())
    assert "Hint: pass an older revision as GOOD" in str(info.value)


def test_bisect_refuses_an_unknown_revision_with_a_hint(sample):
    with pytest.raises(LabError, match=r"revision 'mian' not found. Did you mean 'main'\?"):
        bisect(sample.path, "mian", sample.bad, sample.command())


def test_bisect_refuses_an_empty_range(sample):
    with pytest.raises(LabError, match=r"no commits between"):
        bisect(sample.path, sample.good, sample.good, sample.command())


@pytest.mark.timing
def test_bisect_names_the_regressing_commit_and_the_phase_it_slowed(sample):
    # 20 runs per arm, not 10: on a CI host under outside load a 10-run confirmation of the ~30% step
    # once saw only +21.9% and was not reproduced; 20 runs halve the noise threshold's variance
    result = bisect(sample.path, sample.good, sample.bad, sample.command(),
                    LabSettings(runs=20, confirm=20, stop_at_first_batch=True, timeout=60))
    assert result.culprit_revision == sample.culprit.sha, str(result)
    assert result.phase == sample.slowed_phase == "data_ready"
    assert len(result.steps) <= 1 + math.ceil(math.log2(len(sample.commits) - 1))
    harmless = {c.sha for c in sample.commits if c.kind == "harmless"}
    assert all(not s.regressed for s in result.steps if s.revision in harmless and s.index < result.culprit)
    trail = result.trail()
    assert trail.height == len(result.steps) and trail["regressed"][0]  # BAD regressed
    assert "FIRST REGRESSING CHANGE" in str(result) and sample.culprit.subject in result.headline()
    assert result.table()["step"].n_unique() == len(result.steps)


@pytest.mark.timing
def test_bisect_an_ordered_list_of_configs_without_git():
    code = "import time; from workbench.lab import mark; time.sleep({}); mark('data_ready'); mark('first_batch')"
    # a 0.3 s step stands far above process-start noise even on a loaded machine; sensitivity is benchmarked apart
    configs = [Variant(f"sleep={s}", (sys.executable, "-c", code.format(s))) for s in (0.0, 0.0, 0.3, 0.3)]
    result = bisect_variants(configs[0], configs[1:], LabSettings(runs=5, confirm=5, warmup=0))
    assert result.culprit_subject == "sleep=0.3" and result.culprit == 1
    assert result.phase == "data_ready"
