"""Alembic migrations for the LIS schema (``lis db upgrade``)."""
