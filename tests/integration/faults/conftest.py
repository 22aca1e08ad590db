"""Fault tests run real `careline serve` processes against PostgreSQL (several instances
share one database only there), so they need CARELINE_TEST_DATABASE_URL (CI sets it)."""

from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("CARELINE_TEST_DATABASE_URL")


@pytest.fixture
def pg_admin_url() -> str:
    if not PG_URL:
        pytest.skip("fault tests need PostgreSQL: set CARELINE_TEST_DATABASE_URL")
    return PG_URL
