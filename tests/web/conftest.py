"""Fixtures of the web tests: a recording binder, the service on the root conftest's ``state``,
and an HTTP client against ``make_app`` (pytest-aiohttp, ``asyncio_mode = "auto"``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from extender.core import cluster
from extender.service import ExtenderService
from extender.settings import Settings
from extender.web.app import make_app
from tests.fakes import FakeBinder


@pytest.fixture
def binder() -> FakeBinder:
    return FakeBinder()


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def service(state: cluster.ClusterState, binder: FakeBinder, settings: Settings) -> ExtenderService:
    return ExtenderService(state=state, binder=binder, settings=settings, clock=lambda: 1000.0)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], service: ExtenderService
) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app(service))
