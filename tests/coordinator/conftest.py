"""Coordinator tests: run async tests with asyncio.run (no plugin needed)."""

from __future__ import annotations
