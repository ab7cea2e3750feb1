"""Runs started from Python (`make demo`) that belong to their job in the UI.

`dg.execute_job(reconstructable(...))` and `dagster job execute` create a run without a remote
origin: the Runs page lists it, but the job's Runs tab, the Overview timeline and the code
location select runs by the `.dagster/repository` tag (`<repository>@<code location>`), which
only a run with an origin carries. `dagster job launch` / `dg launch` create the run with the
code location's origin and hand it to the instance's run launcher (another process; a queue that
needs the daemon). Here the run is created the same way, with the origin of the code location
`dagster dev` loads from pyproject.toml (so its name is set in one place), then executed in this
process like `execute_job`, its events handed to the caller as they happen.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.api import execute_run_iterator
from dagster._core.remote_origin import (
    CodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id
from dagster._core.workspace.load_target import get_target_from_toml_data

from core.settings import PROJECT_ROOT

#: The code location's entry point (README "Layout"): the module and its Definitions function.
DEFINITIONS_MODULE = "orchestration.definitions"
DEFINITIONS_ATTRIBUTE = "defs"


def code_location_origin() -> CodeLocationOrigin:
    """The origin `dagster dev` gives the project's code location, read from pyproject.toml
    exactly as Dagster reads it (its `[tool.dagster]` or `[tool.dg.project]` block)."""
    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    target = get_target_from_toml_data(data)
    origins = target.create_origins() if target is not None and not isinstance(target, list) else []
    if len(origins) != 1:
        raise RuntimeError("pyproject.toml does not name exactly one Dagster code location")
    return origins[0]


def new_run_id() -> str:
    return make_new_run_id()


def create_run(
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    run_id: str | None = None,
    run_config: Mapping | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[ReconstructableJob, DagsterRun]:
    """A run of `job_name` with the code location's origin, as `dagster job launch` creates it."""
    repository = ReconstructableRepository.for_module(
        DEFINITIONS_MODULE, DEFINITIONS_ATTRIBUTE, working_directory=str(PROJECT_ROOT)
    )
    job = repository.get_reconstructable_job(job_name)
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=code_location_origin(),
            # the job's (cached) load of the definitions: `repository.get_definition()` would
            # load them a second time (~2 s of a run)
            repository_name=job.get_repository_definition().name,
        ),
        job_name=job_name,
    )
    run = instance.create_run_for_job(
        job.get_definition(),
        run_id=run_id,
        run_config=dict(run_config or {}),
        tags=dict(tags or {}),
        remote_job_origin=origin,
        job_code_origin=job.get_python_origin(),
    )
    return job, run


def execute(
    job: ReconstructableJob, run: DagsterRun, instance: dg.DagsterInstance
) -> Iterator[dg.DagsterEvent]:
    """Execute the run in this process (the job's executor decides how its steps run)."""
    yield from execute_run_iterator(job, run, instance)
