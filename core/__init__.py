"""Shared package: settings, database, models and domain logic for every deployable."""
