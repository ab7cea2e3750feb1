"""Shared fixtures: every test that runs the pipeline gets its own warehouse and Dagster home."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import settings

from core.settings import PROJECT_ROOT
from orchestration.instance import instance_config

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

#: Examples per property test that sets no count of its own: "thorough" by default (a plain
#: `pytest`), "make-test" caps them for `make test` (`--hypothesis-profile=make-test`).
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.register_profile("make-test", max_examples=100, deadline=None)
settings.load_profile("thorough")


@pytest.fixture
def project_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every configurable path at a temporary directory."""
    monkeypatch.setenv("SMO_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("SMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(tmp_path / "publish"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("SMO_INBOX_SETTLE_SECONDS", "0")
    (tmp_path / "dagster_home").mkdir()
    return tmp_path


@contextmanager
def project_instance(home: Path | str | None = None) -> Iterator[dg.DagsterInstance]:
    """A test instance on the project's `dagster.yaml` (its event log storage and pools), as
    production runs: Dagster's test default opens a new SQLite connection for every event, ~4 s
    of a test refresh. `home`: where its storage lives (a temporary folder when None)."""
    with ExitStack() as stack:
        if home is None:
            home = stack.enter_context(tempfile.TemporaryDirectory())
        Path(home).mkdir(parents=True, exist_ok=True)
        overrides = instance_config(Path(home))
        yield stack.enter_context(dg.instance_for_test(temp_dir=str(home), overrides=overrides))


@pytest.fixture
def dagster_instance(project_env: Path) -> Iterator[dg.DagsterInstance]:
    with project_instance(project_env / "dagster_home") as instance:
        yield instance


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (clone with ../shared beside it)")
    return SHARED_DATA


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `build` fills, built once per `make test` even when pytest-xdist runs it in
    several worker processes: the first worker builds it under a file lock in the run's shared
    temporary folder, the others wait and reuse it (pytest-xdist's documented pattern). For
    read-only session fixtures whose build is expensive (a generated portfolio, a refresh)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        root = tmp_path_factory.mktemp(name)
        build(root)
        return root
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent
    root, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)  # left half-built by a worker that failed
            root.mkdir()
            build(root)
            done.touch()
    return root


@pytest.fixture(scope="session")
def small_portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated portfolio (4 SMOs, 4 dialects, 3 weekly deliveries); read-only."""
    from synthetic.generate import generate

    return built_once(
        tmp_path_factory, "portfolio", lambda out: generate(out, scale=0.25, weeks=3, seed=11)
    )


@pytest.fixture
def data_dir(project_env: Path, small_portfolio: Path) -> Path:
    """A writable copy of the small portfolio as SMO_DATA_DIR (inbox, profiles, registry)."""
    target = project_env / "data"
    shutil.copytree(small_portfolio, target)
    return target


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory):
    """Every bad-delivery case (read-only)."""
    from synthetic.bad_deliveries import write_catalogue

    return write_catalogue(tmp_path_factory.mktemp("catalogue"))


@pytest.fixture(scope="session")
def refreshed_portfolio(tmp_path_factory: pytest.TempPathFactory, small_portfolio: Path) -> Path:
    """The small portfolio after one successful refresh: warehouse, data and publish (read-only;
    tests take a copy through `refreshed_env`). Saves a full refresh in every test that starts
    from a published state; its run stays in `dagster_home` for tests that read its events."""

    def refresh(root: Path) -> None:
        shutil.copytree(small_portfolio, root / "data")
        refresh_folder(root, "the first refresh of the small portfolio")

    return built_once(tmp_path_factory, "refreshed", refresh)


def refresh_folder(root: Path, what: str) -> None:
    """One full refresh of the deliveries in `root/data`, with the warehouse, publish folder and
    Dagster home (its run kept for tests that read its events) all under `root`."""
    from orchestration.demo import refresh_job

    (root / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMO_WAREHOUSE_PATH", str(root / "warehouse.duckdb"))
        mp.setenv("SMO_DATA_DIR", str(root / "data"))
        mp.setenv("SMO_PUBLISH_DIR", str(root / "publish"))
        mp.setenv("SMO_INBOX_SETTLE_SECONDS", "0")
        with project_instance(root / "dagster_home") as instance:
            result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)
            assert result.success, f"{what} failed"


@pytest.fixture
def refreshed_env(project_env: Path, refreshed_portfolio: Path) -> Path:
    """A writable copy of `refreshed_portfolio` at the paths `project_env` points to."""
    shutil.copy2(refreshed_portfolio / "warehouse.duckdb", project_env / "warehouse.duckdb")
    for folder in ("data", "publish"):
        shutil.copytree(refreshed_portfolio / folder, project_env / folder, symlinks=True)
    return project_env


#: What a failed install prints when the package registry cannot be reached (uv and pip).
UNREACHABLE = ("failed to fetch", "dns error", "connection", "timed out", "network is unreachable",
               "temporary failure in name resolution")  # fmt: skip


def isolated_python(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *requirements: str,
    cached: bool = True,
) -> Path:
    """A Python with `requirements` installed from the package registry, isolated from the
    project's environment (a BI tool's driver stack, an older DuckDB); kept in pytest's cache
    between runs when the cache is enabled and `cached` (pinned requirements). Skips only when
    the registry cannot be reached."""
    from filelock import FileLock

    cache = getattr(pytestconfig, "cache", None) if cached else None
    env_dir = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    with FileLock(str(env_dir.parent / f"{env_dir.name}.lock")):  # one installer per xdist run
        return _install_python(env_dir, name, requirements)


def _install_python(env_dir: Path, name: str, requirements: tuple[str, ...]) -> Path:
    import subprocess
    import sys

    python = env_dir / "bin" / "python"
    stamp = env_dir / "requirements.txt"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(env_dir, ignore_errors=True)
    uv = shutil.which("uv")
    if uv:
        steps = [[uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)],
                 [uv, "pip", "install", "--quiet", "--python", str(python), *requirements]]  # fmt: skip
    else:
        steps = [[sys.executable, "-m", "venv", str(env_dir)],
                 [str(python), "-m", "pip", "install", "--quiet", *requirements]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode and any(s in done.stderr.lower() for s in UNREACHABLE):
            pytest.skip(f"package registry unreachable, cannot install {requirements}: "
                        f"{done.stderr.strip()[-300:]}")  # fmt: skip
        assert done.returncode == 0, f"setting up {name} failed: {done.stderr}"
    stamp.write_text(wanted)
    return python


@pytest.fixture(scope="session")
def duckdb15_python(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with DuckDB 1.5.x (what drivers bundling DuckDB 1.5 read), isolated from the
    project's (which has DuckDB 2)."""
    return isolated_python(pytestconfig, tmp_path_factory, "duckdb-1.5-client", "duckdb>=1.5,<1.6")


#: Fixtures of a test that runs (or starts from) a refresh: a proxy for a slow test.
REFRESHING = {"dagster_instance", "data_dir", "refreshed_env", "refreshed_portfolio"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker (`make test`: `--dist loadscope --no-loadscope-reorder`, each
    module whole to one worker, so its module-scoped fixtures are built once), the modules with
    the most refreshing tests run first and the quick ones even out the workers' ends. A plain
    `pytest` keeps the collection order."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    weight: dict[str, int] = {}
    for item in items:
        slow = item.get_closest_marker("integration") or REFRESHING & set(item.fixturenames)
        weight[item.module.__name__] = weight.get(item.module.__name__, 0) + bool(slow)
    items.sort(key=lambda item: -weight[item.module.__name__])  # stable: modules stay whole
