"""Fixtures for the whole suite: a PostgreSQL server, started only if a test asks for one."""

pytest_plugins = ("tests.postgres",)
