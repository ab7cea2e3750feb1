"""A hostile inbox on the real Dagster machinery: the sensor and the smo_deliveries step."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from synthetic.bad_deliveries import write_valid_deliveries
from synthetic.dialects import DIALECTS
from tests.conftest import project_instance

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.name != "posix", reason="POSIX file names, links and FIFOs"),
]


def test_sensor_and_step_survive_a_hostile_inbox(project_env: Path, tmp_path: Path):
    from orchestration.defs.automation import inbox_sensor
    from orchestration.defs.smo_deliveries import smo_deliveries
    from orchestration.lib.warehouse import DuckDBWarehouse

    data = project_env / "data"
    valid = write_valid_deliveries(tmp_path / "valid")
    for smo_id in ("SMO-IBERIA", "SMO-AMERICAS"):
        profile = DIALECTS[smo_id.split("-")[1].lower()].profile(smo_id)
        (data / "profiles").mkdir(parents=True, exist_ok=True)
        (data / "profiles" / f"{smo_id}.yaml").write_text(
            yaml.safe_dump(profile, allow_unicode=True, sort_keys=False)
        )
    iberia, americas = data / "inbox" / "SMO-IBERIA", data / "inbox" / "SMO-AMERICAS"
    iberia.mkdir(parents=True)
    americas.mkdir()
    shutil.copy2(valid["SMO-IBERIA"]["sites"], iberia / os.fsdecode(b"centros_A\xf1o.csv"))
    (iberia / valid["SMO-IBERIA"]["subjects"].name).symlink_to(valid["SMO-IBERIA"]["subjects"])
    (iberia / "dangling.csv").symlink_to(tmp_path / "nowhere")
    os.mkfifo(iberia / "pipe\x07.csv")
    (iberia / "folder").mkdir()
    for feed in ("sites", "subjects"):
        shutil.copy2(valid["SMO-AMERICAS"][feed], americas)
    (data / "inbox" / "SMO-LINKED").symlink_to(iberia, target_is_directory=True)

    with project_instance() as instance:
        request = inbox_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(request, dg.RunRequest) and request.tags["inbox_files"] == "7"
        again = inbox_sensor(dg.build_sensor_context(instance=instance))
        assert again.run_key == request.run_key

        result = dg.materialize(
            [smo_deliveries], resources={"warehouse": DuckDBWarehouse()}, instance=instance
        )
    assert result.success
    [ledger] = [
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key.path == ["ops", "deliveries"]
    ]
    assert ledger["accepted"].value == 2 and ledger["rejected"].value == 5
    assert ledger["left_in_inbox"].value == 1  # the linked SMO folder, never followed
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        names = dict(
            con.execute("select file_name, status from ops.deliveries order by 1").fetchall()
        )
    assert names["centros_A\\xf1o.csv"] == names["pipe\\x07.csv"] == "REJECTED"
    assert list(iberia.iterdir()) == [] and sorted(p.name for p in americas.iterdir()) == []
    assert (data / "inbox" / "SMO-LINKED").is_symlink()
