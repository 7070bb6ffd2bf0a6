"""Check the GitHub workflows for what neither actionlint nor the schema enforce.

Every action a workflow uses is pinned to a full commit SHA with its version in a
trailing comment (`uses: owner/repo@<40 hex> # v1.2.3`): a tag can be moved to
other code, a commit cannot, and the comment is what Dependabot updates beside
the SHA. Local actions (`./path`) and Docker images pinned by digest pass too.

Every workflow declares its top-level `permissions` (otherwise the token gets
the repository's default, often read-write), and nothing asks for `write-all`
or `read-all`. The top level grants no write scope: a job that must write (push an
image) asks for that one scope itself.

usage: python tools/check_workflows.py [FILE ...]   (default .github/workflows/*.yml)
Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PINNED = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}")
DOCKER_DIGEST = re.compile(r"docker://[^@\s]+@sha256:[0-9a-f]{64}")
# The `uses:` line as written, to see the version comment YAML drops.
USES_LINE = re.compile(r"""^\s*(?:-\s+)?uses:\s*(['"]?)(?P<ref>[^'"\s#]+)\1\s*(?P<comment>#.*)?$""")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\S*\s*$")
BLANKET = {"write-all", "read-all"}


def uses_of(workflow: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, reference) for every `uses:` of the jobs and their steps."""
    for job_id, job in (workflow.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        if isinstance(job.get("uses"), str):  # a reusable workflow
            yield f"jobs.{job_id}", job["uses"]
        for index, step in enumerate(job.get("steps") or []):
            if isinstance(step, dict) and isinstance(step.get("uses"), str):
                yield f"jobs.{job_id}.steps[{index}]", step["uses"]


def version_comments(text: str) -> dict[str, bool]:
    """For each reference on a `uses:` line: whether every such line has a version comment."""
    found: dict[str, bool] = {}
    for line in text.splitlines():
        match = USES_LINE.match(line)
        if match:
            has = bool(match["comment"] and VERSION_COMMENT.search(match["comment"]))
            found[match["ref"]] = found.get(match["ref"], True) and has
    return found


def pin_problems(workflow: dict[str, Any], text: str) -> list[str]:
    """Every `uses:` not pinned by commit SHA (or digest), or pinned without its version."""
    problems = []
    comments = version_comments(text)
    for where, ref in uses_of(workflow):
        if ref.startswith("./") or DOCKER_DIGEST.fullmatch(ref):
            continue
        if not PINNED.fullmatch(ref):
            problems.append(f"{where}: `{ref}` is not pinned to a full 40-hex commit SHA")
        elif not comments.get(ref, False):
            problems.append(f"{where}: `{ref}` has no `# vX.Y.Z` version comment")
    return problems


def permission_problems(workflow: dict[str, Any]) -> list[str]:
    """Top-level permissions missing or blanket; a job's blanket permissions."""
    problems = []
    top = workflow.get("permissions")
    if top is None:
        problems.append("no top-level `permissions` (the token would get the default)")
    elif isinstance(top, str) and top in BLANKET:
        problems.append(f"top-level `permissions: {top}`: list the scopes needed")
    elif isinstance(top, dict):
        writes = sorted(scope for scope, level in top.items() if level == "write")
        if writes:
            problems.append(f"top-level write scopes {writes}: grant them on the job instead")
    for job_id, job in (workflow.get("jobs") or {}).items():
        granted = job.get("permissions") if isinstance(job, dict) else None
        if isinstance(granted, str) and granted in BLANKET:
            problems.append(f"jobs.{job_id}: `permissions: {granted}`")
    return problems


def check(path: Path) -> list[str]:
    """The problems of one workflow file, each prefixed with the file's name."""
    text = path.read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    if not isinstance(workflow, dict):
        return [f"{path}: not a workflow (a YAML mapping)"]
    return [f"{path}: {p}" for p in permission_problems(workflow) + pin_problems(workflow, text)]


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    if not paths:
        print("no workflow files found", file=sys.stderr)
        return 1
    problems = [p for path in paths for p in check(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
