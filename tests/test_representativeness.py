"""Representativeness privacy: the small-cell suppression macro (macros/suppression.sql),
compiled once by dbt and run in DuckDB over generated cells, and the publish gate's small-cell
rule on a planted mart. The mart itself is covered by dbt unit tests
(models/marts/enrollment/_enrollment__models.yml) and by the CDISC pilot refresh."""

from __future__ import annotations

import json

import duckdb
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.settings import DBT_PROJECT_DIR
from expectations.publish_gate import (
    SMALL_CELLS,
    SUPPRESSED_NULL,
    check_small_cells,
    mart_rules,
    validate_mart,
)
from orchestration.lib.dbt import dbt_project

MART = "enrollment_representativeness"


@pytest.fixture(scope="module")
def suppression_sql(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The macro as dbt renders it, over a table `cells(unit, group_code, cell, denominator)`."""
    from dbt.cli.main import dbtRunner

    tmp = tmp_path_factory.mktemp("dbt_compile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMO_WAREHOUSE_PATH", str(tmp / "compile.duckdb"))
        mp.chdir(DBT_PROJECT_DIR)
        result = dbtRunner().invoke(
            [
                "compile",
                "--quiet",
                "--target-path",
                str(tmp / "target"),
                "--log-path",
                str(tmp / "logs"),
                "--inline",
                "{{ suppress_small_cells('cells', ['unit'], 'cell', 'denominator', "
                "'group_code', ['cell', 'share']) }}",
            ]
        )
    assert result.success, result.exception
    return result.result.results[0].node.compiled_code


def _suppress(sql: str, units: dict[str, list[int]]) -> list[tuple]:
    """Rows (unit, group_code, cell, share, suppressed, reason) after suppression."""
    rows = [
        (unit, f"g{i:02d}", cell, sum(cells), cell / sum(cells) if sum(cells) else None)
        for unit, cells in units.items()
        for i, cell in enumerate(cells)
    ]
    with duckdb.connect() as con:
        con.execute(
            "create table cells (unit varchar, group_code varchar, cell bigint, "
            "denominator bigint, share double)"
        )
        con.executemany("insert into cells values (?, ?, ?, ?, ?)", rows)
        return con.execute(
            f"select unit, group_code, cell, share, suppressed, suppression_reason from ({sql}) "
            "order by unit, group_code"
        ).fetchall()


def test_three_women_and_twenty_men_are_both_suppressed(suppression_sql):
    rows = _suppress(suppression_sql, {"site": [3, 20, 0]})
    assert rows == [
        ("site", "g00", None, None, True, "cell under 5"),
        ("site", "g01", None, None, True, "complement of a suppressed cell"),
        ("site", "g02", 0, 0.0, False, None),  # a zero cell is published
    ]


def test_a_unit_of_four_has_every_cell_suppressed(suppression_sql):
    rows = _suppress(suppression_sql, {"site": [0, 4, 0]})
    assert [r[2:] for r in rows] == [(None, None, True, "unit under 5 subjects")] * 3


def test_cells_of_five_or_more_and_zeros_are_published(suppression_sql):
    rows = _suppress(suppression_sql, {"site": [5, 0, 12]})
    assert [(r[2], r[4]) for r in rows] == [(5, False), (0, False), (12, False)]


def test_two_small_cells_protect_each_other_without_a_complement(suppression_sql):
    rows = _suppress(suppression_sql, {"site": [2, 3, 30]})
    assert [r[4] for r in rows] == [True, True, False]


# examples: the conftest's hypothesis profile (300 in a plain `pytest`, 100 in `make test`)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.lists(st.integers(0, 40) | st.integers(0, 6), min_size=2, max_size=6),
        min_size=1,
    )
)
def test_no_published_small_cell_and_never_one_suppressed_cell(suppression_sql, units):
    rows = _suppress(suppression_sql, units)
    for unit, cells in units.items():
        out = [r for r in rows if r[0] == unit]
        published = [r[2] for r in out if not r[4]]
        assert all(c == 0 or c >= 5 for c in published), (cells, out)
        assert all(r[2] is None and r[3] is None for r in out if r[4]), out
        suppressed = [c for c, r in zip(cells, out, strict=True) if r[4]]
        # one suppressed cell alone could be recovered from the published denominator
        assert len(suppressed) != 1, (cells, out)
        if sum(cells) >= 5:
            assert len([c for c in suppressed if c > 0]) != 1, (cells, out)
        else:
            assert len(suppressed) == len(cells)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(dbt_project.manifest_path.read_text())


@pytest.fixture(scope="module")
def rules(manifest):
    return mart_rules(manifest)[MART]


def test_the_small_cell_rule_comes_from_the_mart_yaml(rules):
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert rules.small_cells == {"randomized_in_group": project["vars"]["small_cell_min"]}
    assert rules.suppressed_by == dict.fromkeys(
        ["gap_pp", "randomized_in_group", "share", "z_score"], "suppressed"
    )
    assert rules.keys[:2] == ("as_of_date", "level")


#: Planted rows: (week, site, group, denominator, cell, share, suppressed); the rest of each row
#: is a plausible published row.
PLANTED = [
    ("2026-11-09", "A", "F", 23, 4, 0.17, False),
    ("2026-11-16", "A", "F", 23, None, None, True),
    ("2026-11-16", "A", "M", 23, 0, 0.0, False),
    ("2026-11-16", "B", "F", 30, 9, 0.3, True),
]


def _planted_mart(con: duckdb.DuckDBPyConnection, manifest: dict) -> None:
    """The mart as its contract declares it (every column and type), with PLANTED rows."""
    node = next(n for n in manifest["nodes"].values() if n["name"] == MART)
    columns = {name: c["data_type"] for name, c in node["columns"].items()}
    con.execute(f"create table {MART} ({', '.join(f'{n} {t}' for n, t in columns.items())})")
    for week, site, group, denominator, cell, share, suppressed in PLANTED:
        row = {
            "as_of_date": week, "level": "site", "study_id": "T", "smo_id": "S",
            "site_id": site, "country": "US", "dimension": "sex", "group_code": group,
            "plan_id": "DAP-T", "plan_version": "t1", "target_share": 0.5,
            "randomized_with_dimension": denominator, "randomized_in_group": cell,
            "share": share, "suppressed": suppressed, "kri_id": "group_share_site_funnel",
            "kri_version": "t1", "flag": "green",
        }  # fmt: skip
        con.execute(
            f"insert into {MART} by name select "
            + ", ".join(f"?::{columns[k]} as {k}" for k in row),
            list(row.values()),
        )


def test_the_publish_gate_fails_on_a_planted_cell_of_four(rules, manifest):
    with duckdb.connect() as con:
        _planted_mart(con, manifest)
        findings = check_small_cells(con, MART, rules)
        frame = con.execute(f"select * from {MART}").df()
    by_rule = {(f.expectation, f.column): f for f in findings}
    small = by_rule[(SMALL_CELLS, "randomized_in_group")]
    # a past week too: every published week is readable
    assert not small.success and small.unexpected_count == 1
    assert small.examples == [
        "as_of_date=2026-11-09, level=site, study_id=T, smo_id=S, site_id=A, dimension=sex, "
        "group_code=F: 4"
    ]
    withheld = by_rule[(SUPPRESSED_NULL, "randomized_in_group")]
    assert not withheld.success and withheld.examples[0].endswith("site_id=B, dimension=sex, "
                                                                   "group_code=F: 9")  # fmt: skip
    assert not by_rule[(SUPPRESSED_NULL, "share")].success
    assert by_rule[(SUPPRESSED_NULL, "z_score")].success
    outcome = validate_mart(frame, rules, None, findings)
    assert not outcome.success and not outcome.validator_errors
    assert (
        "expect_no_small_cells on randomized_in_group: observed 1 row(s) break NULL, 0 or >= 5"
        in (outcome.summary())
    )
    failed = {r["check_name"] for r in outcome.gate_rows("run") if not r["success"]}
    assert "expect_no_small_cells(randomized_in_group)" in failed


def test_the_publish_gate_passes_suppressed_and_zero_cells(rules, manifest):
    with duckdb.connect() as con:
        _planted_mart(con, manifest)
        con.execute(
            f"update {MART} set randomized_in_group = null, share = null where suppressed "
            "or randomized_in_group = 4"
        )
        con.execute(f"update {MART} set suppressed = true where randomized_in_group is null")
        findings = check_small_cells(con, MART, rules)
    assert findings and all(f.success for f in findings)
