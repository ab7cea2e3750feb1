"""`make demo` speaks to a person: a short message naming what failed, never a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.workspace.context import WorkspaceProcessContext

from core.settings import PROJECT_ROOT
from orchestration import demo

pytestmark = pytest.mark.integration


def test_a_failed_refresh_names_the_blocking_checks_and_exits_non_zero(refreshed_env: Path, capsys):
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb")) as con:
        # A change behind the pipeline's back: the blocking contract check of current rows fails.
        con.execute(
            "update raw.subjects set screened_date = null where subject_id in "
            "(select subject_id from raw.subjects limit 1)"
        )
    code = demo.main()
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1
    assert "FAILED" in text
    assert "blocking check contract on raw/subjects" in text
    assert "The last good publish stays in place" in text
    assert "Traceback" not in text
    assert len(text.splitlines()) < 40, text


def test_an_unexpected_error_is_one_sentence(project_env: Path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the code location could not be loaded\nwith a long story")

    monkeypatch.setattr(demo, "create_run", broken)
    (project_env / "data" / "profiles").mkdir(parents=True)  # no demo data generation
    code = demo.main()
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().startswith("make demo failed:")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- a quiet `make demo` whose run belongs to its job ------------------------------------------

#: A full `make demo` prints ~25 lines (7 steps and the summary); the small portfolio fewer.
MAX_DEMO_LINES = 60
ANSI_ESCAPE = "\x1b["


def _demo_env(root: Path, refreshed_portfolio: Path) -> dict[str, str]:
    """A copy of the refreshed small portfolio whose last build record is gone, so the next
    refresh runs dbt build again (as new deliveries would), and the environment pointing at it."""
    for folder in ("data", "publish"):
        shutil.copytree(refreshed_portfolio / folder, root / folder, symlinks=True)
    shutil.copy2(refreshed_portfolio / "warehouse.duckdb", root / "warehouse.duckdb")
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("delete from ops.dbt_builds")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMO_", "DBT_"))}
    return env | {
        "SMO_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "SMO_DATA_DIR": str(root / "data"),
        "SMO_PUBLISH_DIR": str(root / "publish"),
        "SMO_INBOX_SETTLE_SECONDS": "0",
        "DAGSTER_HOME": str(root / "dagster_home"),
    }


def _run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`make demo` as a user runs it, its output a pipe (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestration.demo", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def quiet_demo(tmp_path_factory, refreshed_portfolio: Path) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("quiet_demo")
    done = _run_demo(_demo_env(root, refreshed_portfolio))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout + done.stderr


def test_the_demo_prints_a_line_per_step_and_ends_with_the_report(quiet_demo):
    root, output = quiet_demo
    lines = output.splitlines()
    assert ANSI_ESCAPE not in output
    assert len(lines) <= MAX_DEMO_LINES, output
    report = (root / "publish" / "oversight-report.html").resolve().as_uri()
    assert lines[-1] == f"Report: {report}"
    steps = {line.split()[0]: line.split()[1] for line in lines if line.startswith("  ") and
             len(line.split()) >= 2 and line.split()[1] in ("ok", "FAILED", "skipped")}  # fmt: skip
    assert steps["warehouse_models"] == "ok" and steps["bi__oversight_report"] == "ok"
    assert re.search(r"  warehouse_models +ok +\d+\.\d s$", output, re.M)
    assert re.search(r"^  deliveries: \d+ loaded \([\d,]+ rows\) and \d+ rejected", output, re.M)
    assert re.search(r"^  red SMOs: \d+$", output, re.M)
    assert re.search(r"^  needs attention: \d+", output, re.M)
    # dbt's per-model lines and Dagster's debug log are in the log file the demo names.
    (log,) = re.findall(r"full Dagster and dbt log in (\S+\.log)", output)
    logged = Path(log).read_text()
    assert Path(log).parent == root / "dagster_home" / "demo-logs"
    assert re.search(r"^\d+ of \d+ OK created sql table model marts\.site_flags", logged, re.M)
    assert " - DEBUG - " in logged and ANSI_ESCAPE not in logged
    assert not re.search(r"^\d+ of \d+ ", output, re.M)  # no dbt progress line on the terminal


def test_a_demo_run_is_listed_under_its_job_in_the_code_location(quiet_demo):
    """What the job's Runs tab asks the webserver, against the code location `dagster dev` loads
    from pyproject.toml."""
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.workspace.load_target import PyProjectFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    root, _ = quiet_demo
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(root / "dagster_home"))) as instance:
        (record,) = instance.get_run_records(dg.RunsFilter(job_name=demo.JOB_NAME))
        origin = record.dagster_run.remote_job_origin
        assert origin is not None, "the run has no code location origin"
        target = PyProjectFileTarget(str(PROJECT_ROOT / "pyproject.toml"))
        with WorkspaceProcessContext(instance, target) as workspace:
            context = workspace.create_request_context()
            (location,) = context.code_location_names
            assert origin.location_name == location
            result = execute_dagster_graphql(
                context,
                RUNS_OF_JOB,
                {
                    "selector": {
                        "repositoryLocationName": location,
                        "repositoryName": origin.repository_origin.repository_name,
                        "pipelineName": demo.JOB_NAME,
                    }
                },
            )
    assert not result.errors, result.errors
    runs = result.data["pipelineOrError"]["runs"]
    assert [r["runId"] for r in runs] == [record.dagster_run.run_id]
    assert runs[0]["repositoryOrigin"]["repositoryLocationName"] == location


RUNS_OF_JOB = """
query RunsOfJob($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    ... on Pipeline { runs { runId repositoryOrigin { repositoryLocationName } } }
    ... on PythonError { message }
  }
}
"""


def test_verbose_prints_dbt_and_dagster_logs_without_escape_codes_in_a_pipe(
    tmp_path: Path, refreshed_portfolio: Path
):
    done = _run_demo(_demo_env(tmp_path, refreshed_portfolio), "--verbose")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert re.search(r"^\d+ of \d+ OK created sql table model marts\.site_flags", output, re.M)
    assert " - DEBUG - " in output and ANSI_ESCAPE not in output
    assert done.stdout.splitlines()[-1].startswith("Report: file://")  # Dagster's log: stderr
    assert not (tmp_path / "dagster_home" / "demo-logs").exists()
