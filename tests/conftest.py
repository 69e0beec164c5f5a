"""Shared fixtures: the real models (loaded once per test run) and the real sample footage."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pose import assets

if TYPE_CHECKING:
    from pose.pipeline import Models

DATA = assets.DATA_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite each backend's stored golden-set output (harness/golden/outputs/) instead of comparing with it",
    )


@pytest.fixture(scope="session")
def regen_golden(request: pytest.FixtureRequest) -> bool:
    """--regen-golden, or DANCESYNC_REGEN_GOLDEN=1 in the environment."""
    return bool(request.config.getoption("--regen-golden")) or os.environ.get("DANCESYNC_REGEN_GOLDEN") == "1"


@pytest.fixture(scope="session")
def models_for() -> Callable[[str], Models]:
    """Models with the named pose backend, each loaded once per test run."""
    from pose.pipeline import load_models

    loaded: dict[str, Models] = {}

    def get(pose: str) -> Models:
        if pose not in loaded:
            loaded[pose] = load_models(DATA, pose=pose)
        return loaded[pose]

    return get


@pytest.fixture(scope="session")
def models(models_for: Callable[[str], Models]) -> Iterator[Models]:
    from pose.models import DEFAULT_BACKEND

    yield models_for(DEFAULT_BACKEND)


@pytest.fixture(scope="session")
def sample_video() -> Path:
    assets.ensure((assets.SAMPLE_VIDEO,))
    return assets.SAMPLE_VIDEO.path()


@pytest.fixture(scope="session")
def solo_image() -> Path:
    assets.ensure((assets.SAMPLE_SOLO,))
    return assets.SAMPLE_SOLO.path()


@pytest.fixture(scope="session")
def pair_image() -> Path:
    assets.ensure((assets.SAMPLE_PAIR,))
    return assets.SAMPLE_PAIR.path()


# Fixtures that load a model, run one through the command line, start a server or drive a browser. A test that
# uses none of them (directly or through another fixture) and is not marked `browser` or `cli` is pure: it runs
# in `make test-fast`.
HEAVY_FIXTURES = frozenset(
    {
        *("models", "models_for", "catalog", "seeded", "clips", "live_client", "aiohttp_client"),
        *("server", "sample_reference", "solo_image", "pair_image", "vtest_csv", "hostile", "postgres", "store_url"),
        "take_media",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if not fixtures & HEAVY_FIXTURES and not any(item.get_closest_marker(m) for m in ("browser", "cli")):
            item.add_marker(pytest.mark.pure)
