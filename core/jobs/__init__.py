"""The job engine: recording, claiming, running and recovering background
jobs of any kind. It knows no feature: features declare their kinds
(:class:`core.jobs.kinds.JobKind`) and :mod:`core.jobs_index` lists them.
How a job is delivered, and why none is lost or run twice: see README, Jobs."""
