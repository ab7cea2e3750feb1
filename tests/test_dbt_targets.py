"""dagster-dbt leaves a target folder per dbt run; the step keeps only the newest."""

from __future__ import annotations

import os
from pathlib import Path

from orchestration.lib.dbt import prune_run_targets


def test_only_the_newest_run_folders_are_kept(tmp_path: Path):
    for i in range(7):
        folder = tmp_path / f"warehouse_models-run{i}-abc"
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
        os.utime(folder, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "manifest.json").write_text("{}")  # the project's own artifacts stay
    (tmp_path / "other_op-run0-abc").mkdir()

    removed = prune_run_targets(tmp_path, "warehouse_models", keep=5)

    assert sorted(p.name for p in removed) == [
        "warehouse_models-run0-abc",
        "warehouse_models-run1-abc",
    ]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["manifest.json", "other_op-run0-abc"] + [
        f"warehouse_models-run{i}-abc" for i in range(2, 7)
    ]
