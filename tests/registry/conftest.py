"""Fixtures for the registry tests: the real reference data, a threaded HTTP server, a fake clock.

The reference data lives beside the project (`../shared/data`, see its README); tests that need
it skip with a clear reason when it is absent (a plain clone outside CI).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from ingest.registry.sources import iter_export

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
API_RESPONSES = SHARED_DATA / "ctgov" / "api_responses"
EXPORTS = SHARED_DATA / "ctgov" / "exports"
EXPORT_FILES = (
    "nsclc_100.json",
    "registered_2023_06_50.json",
    "NCT02513394.json",
    "urology_635.json.zip",
)


def _require(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(
            f"real ClinicalTrials.gov reference data not found at {path} "
            "(clone the project with ../shared/data beside it)"
        )
    return path


@pytest.fixture(scope="session")
def api_responses() -> Path:
    return _require(API_RESPONSES)


@pytest.fixture(scope="session")
def exports() -> Path:
    return _require(EXPORTS)


@pytest.fixture(scope="session")
def load_response(api_responses: Path):
    """`load_response("search_phelan_limit5")` -> the decoded recorded response."""

    def load(stem: str) -> Any:
        return json.loads((api_responses / f"{stem}_20260811.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture(scope="session")
def export_records(exports: Path) -> dict[str, list[dict[str, Any]]]:
    """Every record of every export file, by file name (read once per session)."""
    return {name: list(iter_export(exports / name)) for name in EXPORT_FILES}


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's `httpserver`, but threaded, so a deliberately slow handler (timeout
    test) does not block the client's retry."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


class FakeClock:
    """Injectable clock + sleep: `sleep` records the wait and advances time instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
