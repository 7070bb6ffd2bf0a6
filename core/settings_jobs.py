"""Settings of background jobs and uploads (a group of core.settings)."""

from __future__ import annotations

from pydantic import Field, model_validator

from core.settings_base import SettingsGroup


class JobSettings(SettingsGroup):
    """Background jobs: uploads, retries and the relay's timing."""

    # Largest CSV accepted by POST /api/v1/items/import (413 beyond it).
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    # Uploads read at once per API process (503 beyond); an import's CSV header (422 beyond).
    uploads_per_process: int = Field(default=2, ge=1, le=256)
    import_max_header_bytes: int = Field(default=4096, ge=64, le=65_536)
    import_max_columns: int = Field(default=32, ge=5, le=1024)
    # Result downloads one API process streams at once (503 beyond): each
    # holds about two 1 MiB chunks while a slow client reads.
    downloads_per_process: int = Field(default=16, ge=1, le=1024)
    # Seconds an upload may send nothing before it is dropped (408): a
    # stalled client never holds one of the slots above for long.
    upload_idle_seconds: float = Field(default=15.0, ge=1, le=300)
    # Runs of one job before it is failed for good (a job whose worker keeps
    # dying is not retried forever).
    max_job_attempts: int = Field(default=3, ge=1, le=100)
    # How often a running job proves it is alive.
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # A running job silent for this long is taken back from its (dead) worker.
    job_stale_after_seconds: float = Field(default=60.0, gt=0)
    # A job still queued this long after its message was sent is sent again.
    job_resend_after_seconds: float = Field(default=30.0, gt=0)
    # How often the scheduler runs the relay.
    relay_interval_seconds: float = Field(default=5.0, gt=0)
    # The scheduler's lease in Redis (worker/leader.py): only its holder sends
    # periodic tasks; it renews it every third of this, and a holder that dies
    # is replaced within 4/3 of it.
    scheduler_lock_ttl_seconds: float = Field(default=10.0, ge=1, le=300)
    # CSV rows validated and written per database round trip.
    import_batch_rows: int = Field(default=20_000, ge=1, le=100_000)
    # Items one user may own (POST /api/v1/items answers 403 at it; an
    # import stores new items up to it and skips the rest). Here because the
    # worker's imports apply it too.
    max_items_per_user: int = Field(default=100_000, ge=1, le=100_000_000)
    # GET /api/v1/items counts the matching items up to this many (or to the
    # end of the page asked for, if further): past it, `total` is that bound
    # and `total_capped` is true, so that no page counts a whole large set.
    items_total_cap: int = Field(default=1_000, ge=100, le=1_000_000)
    # Celery worker processes (prefork children) per worker container.
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    # Jobs one worker process runs at once on its event loop (each holds a
    # database connection while it writes): its claims still go one at a time.
    # One by default: with more, one user's backlog fills every place and
    # another user's job waits longer for a free one (fairness, README Jobs).
    worker_jobs_per_process: int = Field(default=1, ge=1, le=64)
    # Worker containers the fleet may scale to, for the connection budget.
    worker_replicas: int = Field(default=1, ge=1, le=1000)
    # Port of the worker's Prometheus endpoint (internal network only); 0: off.
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    # The same for a job's statements (a big import's COPY must fit); a job
    # cancelled by it fails, not retried. At most the task's limit (30 min).
    job_statement_timeout_seconds: float = Field(default=600.0, ge=1, le=1800)
    # Hours an export's file is kept after its job finished; then the
    # scheduler deletes it and its result route answers 410 Gone.
    result_retention_hours: int = Field(default=168, ge=1, le=8760)
    # Queued + running jobs one user may have at once (429 beyond): one user's
    # backlog stays bounded, and fair claims keep it from starving others.
    max_active_jobs_per_user: int = Field(default=20, ge=1, le=100_000)
    # Bytes of job files (uploads of unfinished jobs, results not yet
    # expired) one user may have stored; an upload or export past it is refused.
    max_stored_file_bytes_per_user: int = Field(default=200 * 1024 * 1024, ge=1)

    @model_validator(mode="after")
    def _heartbeat_beats_staleness(self) -> JobSettings:
        if self.job_stale_after_seconds < 2 * self.job_heartbeat_seconds:
            raise ValueError(
                "JOB_STALE_AFTER_SECONDS must be at least twice JOB_HEARTBEAT_SECONDS, "
                "or live jobs would be taken back from their workers"
            )
        return self

    @model_validator(mode="after")
    def _largest_upload_fits_the_quota(self) -> JobSettings:
        if self.max_stored_file_bytes_per_user < self.max_upload_bytes:
            raise ValueError(
                "MAX_STORED_FILE_BYTES_PER_USER must be at least MAX_UPLOAD_BYTES, "
                "or the largest upload accepted could never be stored"
            )
        return self
