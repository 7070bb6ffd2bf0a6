"""Alembic migrations; ``python -m migrate`` applies them under an advisory lock."""
