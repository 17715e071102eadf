"""Shared fixtures: a replayable seeded rng, and small simulated and hand-made datasets."""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from icanets.parallel import available_cpus
from icanets.simulate import simulate_study


def pytest_xdist_auto_num_workers(config):
    """``--numprocesses=auto``: the CPUs this process may use (pytest-xdist's own count is the
    host's physical cores, which a container or an affinity mask may not give it);
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still overrides it."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return available_cpus()


def pytest_configure(config):
    """In each pytest-xdist worker, BLAS gets its share of the cores (the workers together use
    each core once instead of every worker using them all)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        from threadpoolctl import threadpool_limits

        share = max(1, available_cpus() // workers)
        # BLAS was loaded (with numpy) before this hook: limit it here, and through the
        # environment for the processes tests start (`icanets run` in a subprocess), whose
        # results are compared with this process's and can differ in the last digit under
        # another thread count.
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(share)
        config._icanets_blas_limit = threadpool_limits(limits=share, user_api="blas")


#: ``workerinput`` key of the folder where each pytest-xdist worker writes its tests' groups.
GROUPS_KEY = "icanets_test_groups"


def _group(item) -> str:
    """The tests that use the demo study form one group (simulated and run once in the
    session); every other test is grouped with its module (module fixtures computed once)."""
    demo = {"demo_study", "demo_run"} & set(getattr(item, "fixturenames", ()))
    return "demo" if demo else item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config, items):
    """In a pytest-xdist worker: each test's group, for :func:`pytest_xdist_make_scheduler`."""
    folder = getattr(config, "workerinput", {}).get(GROUPS_KEY)
    if folder:
        path = Path(folder) / f"{config.workerinput['workerid']}.json"
        path.with_suffix(".tmp").write_text(json.dumps({item.nodeid: _group(item) for item in items}))
        path.with_suffix(".tmp").replace(path)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """(pytest-xdist controller) The folder the workers write their groups to."""
    config = node.config
    if not hasattr(config, "_icanets_groups"):
        config._icanets_groups = tempfile.TemporaryDirectory(prefix="icanets-test-groups-")
    node.workerinput[GROUPS_KEY] = config._icanets_groups.name


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist=loadgroup`` (the default here) sends each group of :func:`_group` to one worker.

    pytest-xdist's own loadgroup reads ``xdist_group`` marks through the node ids, which pytest
    9.2 no longer lets a plugin change (pytest-xdist issue 1386): it then silently spreads every
    test over the workers, and each worker runs the demo and the module fixtures again. The
    groups travel in a file instead, written by the workers as they collect.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    groups: dict[str, str] = {}

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            # Called once every worker has collected, so every worker's file is complete.
            if not groups:
                for path in sorted(Path(config._icanets_groups.name).glob("*.json")):
                    groups.update(json.loads(path.read_text()))
                if not groups:
                    raise RuntimeError("no pytest-xdist worker wrote its test groups (tests/conftest.py)")
            return groups.get(nodeid, nodeid.split("::")[0])

    return GroupScheduling(config, log)


@pytest.fixture
def rng(request):
    """A seeded Generator; the seed is printed so a failure can be replayed.

    The seed is fixed per test (from its id), so CI does not pass or fail by chance; set
    ICANETS_TEST_SEED to run a test with another seed.
    """
    default = zlib.crc32(request.node.nodeid.encode())
    seed = int(os.environ.get("ICANETS_TEST_SEED", default))
    print(f"\n[rng seed for {request.node.name}: ICANETS_TEST_SEED={seed}]")
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """The ``tiny`` preset simulated once per test session (seed 3)."""
    return simulate_study(tmp_path_factory.mktemp("sim") / "tiny", "tiny", seed=3)


#: The team's shared folder (real FSL outputs), beside the repository; absent on some machines.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def fslcourse():
    """Folder of the FSL course netmats and randomise outputs; skips where it is absent."""
    folder = SHARED / "reference" / "fslcourse"
    if not (folder / "Pnetmats_ridgep.npy").exists():
        pytest.skip(f"reference data not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """The ``demo`` preset simulated once per test session (seed 0)."""
    return simulate_study(tmp_path_factory.mktemp("sim") / "demo", "demo", seed=0)


@pytest.fixture(scope="session")
def tiny_run(tiny_study, tmp_path_factory):
    """``icanets run`` of the tiny study, once per test session."""
    from icanets.runner import run_study

    return run_study(tiny_study.config, tmp_path_factory.mktemp("run") / "out")


#: Permutations of the demo prediction's null in :func:`demo_run` (the demo's own 1000 cost a
#: third of the run; the tests check the prediction's outputs, not its p-value's resolution).
DEMO_PREDICTION_PERMUTATIONS = 100


@pytest.fixture(scope="session")
def demo_run(demo_study, tmp_path_factory):
    """``icanets run`` of the demo study, once per test session, with
    :data:`DEMO_PREDICTION_PERMUTATIONS` permutations for its prediction (everything else as
    ``make demo`` runs it)."""
    from icanets.runner import run_study

    text = Path(demo_study.config).read_text()
    marker = "[predict.hdrs_change_from_tp1]\n"
    assert marker in text, "the demo study declares its prediction"
    config = Path(demo_study.config).with_name("study-tests.toml")
    config.write_text(text.replace(marker, f"{marker}n_perm = {DEMO_PREDICTION_PERMUTATIONS}\n"))
    return run_study(config, tmp_path_factory.mktemp("demo-run") / "out")
