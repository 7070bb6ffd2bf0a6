"""The Celery worker and beat scheduler."""
