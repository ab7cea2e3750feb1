"""`smo-oversight check-delivery`: the onboarding dry run, through the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

SCRIPT = Path(sys.executable).with_name("smo-oversight")


def cli(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SMO_WAREHOUSE_PATH": str(env_dir / "none.duckdb"),
           "SMO_DATA_DIR": str(env_dir), "HOME": str(env_dir)}  # fmt: skip
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT
    )


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    from synthetic.bad_deliveries import write_catalogue, write_valid_deliveries

    out = tmp_path_factory.mktemp("cli")
    write_catalogue(out, cases=["wrong_delimiter"])
    return out, write_valid_deliveries(out / "valid")


def test_valid_files_exit_0(valid, tmp_path):
    out, files = valid
    paths = [str(files["SMO-IBERIA"][f]) for f in ("subjects", "sites")]  # roster given after
    done = cli("check-delivery", "--smo", "SMO-IBERIA", "--profile", str(out / "profiles/SMO-IBERIA.yaml"),
               *paths, env_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 file(s) would be accepted" in done.stdout


@pytest.mark.parametrize("case", ["wrong_delimiter", "empty_file", "binary_junk", "wrong_xlsx_sheet",
                                  "header_only", "corrupt_xlsx", "unknown_site"])  # fmt: skip
def test_bad_file_exits_1_with_a_report_and_no_traceback(catalogue, case, tmp_path):
    bad = catalogue[case]
    done = cli("check-delivery", "--smo", bad.smo_id, "--profile", str(bad.profile_path),
               str(bad.path), env_dir=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert bad.expected_rule in done.stdout or case == "unknown_site"
    assert "Delivery rejected" in done.stdout


def test_site_missing_from_any_roster_is_reported(catalogue, tmp_path):
    bad = catalogue["unknown_site"]
    done = cli("check-delivery", "--smo", bad.smo_id, "--profile", str(bad.profile_path),
               str(bad.path), env_dir=tmp_path)  # fmt: skip
    assert "roster.site_known" in done.stdout


def test_profile_error_exits_2(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("smo_id: SMO-X\nprofile_version: 1\nfeeds: {subjects: {file_patern: x}}\n")
    target = tmp_path / "f.csv"
    target.write_text("a\n1\n")
    done = cli(
        "check-delivery", "--smo", "SMO-X", "--profile", str(profile), str(target), env_dir=tmp_path
    )
    assert done.returncode == 2
    assert "feeds.subjects.file_patern" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(tmp_path):
    assert cli("check-delivery", "--smo", "SMO-X", env_dir=tmp_path).returncode == 2
    missing = cli("check-delivery", "--smo", "SMO-X", str(tmp_path / "nope.csv"), env_dir=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
