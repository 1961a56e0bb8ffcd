"""Benchmarks: ``python -m bench.intake`` measures APPLY intake on SQLite and PostgreSQL."""
