"""The CI files an adopter gets: the workflows, Dependabot and pre-commit.

The checks `make lint` runs on them (check-jsonschema with its bundled
GitHub workflow and Dependabot schemas, tools/check_workflows.py for commit
pins and permissions) pass on the real files and fail on broken copies; and the
files do what README "CI" says: CI runs exactly `make lint` and `make test`,
the release pushes the runtime image to GitHub's registry, every job has a
time limit, and the token gets no more than it needs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
RELEASE = WORKFLOWS / "release.yml"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
CHECK_WORKFLOWS = ROOT / "tools" / "check_workflows.py"
MAKEFILE = ROOT / "Makefile"
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"

# The pin as it stands (Dependabot moves it): `actions/checkout@<sha> # v<version>`.
CHECKOUT_USES = re.findall(r"actions/checkout@[0-9a-f]{40} # v\S+", CI.read_text("utf-8"))[0]
CHECKOUT_PIN = CHECKOUT_USES.split(" # ")[0]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """A tool in this interpreter's environment (the one `uv run` gives `make lint`)."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False
    )


def schema_check(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against one of its bundled schemas (no network)."""
    return run("-m", "check_jsonschema", "--builtin-schema", f"vendor.{schema}", *map(str, files))


def check_workflows(*files: Path) -> subprocess.CompletedProcess[str]:
    return run(str(CHECK_WORKFLOWS), *map(str, files))


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The `on:` mapping (YAML 1.1 reads the bare key `on` as true)."""
    on = workflow.get("on", workflow.get(True))
    assert isinstance(on, dict)
    return on


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    [step] = [s for s in steps(job) if s.get("uses", "").startswith(f"{action}@")]
    return step


def broken(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    """A copy of `source` with one change, in tmp_path under the same name."""
    text = source.read_text(encoding="utf-8")
    assert old in text, old
    copy = tmp_path / source.name
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


# The real files pass every check.


def test_workflows_match_githubs_schema() -> None:
    result = schema_check("github-workflows", CI, RELEASE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_matches_its_schema() -> None:
    result = schema_check("dependabot", DEPENDABOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_are_pinned_and_least_privilege() -> None:
    result = check_workflows(CI, RELEASE)
    assert result.returncode == 0, result.stderr
    # With no argument the tool finds both files itself (as `make lint` runs it).
    assert check_workflows().returncode == 0


def test_make_lint_runs_the_ci_checks() -> None:
    lint = MAKEFILE.read_text(encoding="utf-8").split("\nlint:", 1)[1].split("\n\n", 1)[0]
    schema_check = "uv run --frozen check-jsonschema --builtin-schema"
    assert f"{schema_check} vendor.github-workflows .github/workflows/*.yml" in lint
    assert f"{schema_check} vendor.dependabot .github/dependabot.yml" in lint
    assert "python tools/check_workflows.py" in lint


# Broken copies fail.


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    runs-on: ubuntu-24.04\n    timeout-minutes: 15", "    runs_on: ubuntu-24.04"),
        ("      - run: make lint", "      - run: make lint\n        shel: bash"),
        ("  pull_request:", "  pull_requests:"),
        ("    timeout-minutes: 15", "    timeout-minutes: fifteen"),
    ],
    ids=["unknown-job-key", "unknown-step-key", "unknown-event", "wrong-type"],
)
def test_schema_refuses_a_broken_workflow(tmp_path: Path, old: str, new: str) -> None:
    result = schema_check("github-workflows", broken(tmp_path, CI, old, new))
    assert result.returncode == 1, result.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("interval: weekly", "interval: fortnightly"),
        ("package-ecosystem: uv", "package-ecosystem: poetry-but-not"),
        ("    open-pull-requests-limit: 5", "    open-pull-request-limit: 5"),
    ],
    ids=["bad-interval", "unknown-ecosystem", "unknown-key"],
)
def test_schema_refuses_a_broken_dependabot_file(tmp_path: Path, old: str, new: str) -> None:
    result = schema_check("dependabot", broken(tmp_path, DEPENDABOT, old, new))
    assert result.returncode == 1, result.stdout


@pytest.mark.parametrize(
    ("source", "old", "new", "message"),
    [
        (CI, CHECKOUT_USES, "actions/checkout@v7.0.1", "not pinned"),
        (CI, CHECKOUT_USES, "actions/checkout@main", "not pinned"),
        (CI, CHECKOUT_USES, f"{CHECKOUT_PIN[:24]} # v7.0.1", "not pinned"),
        (CI, CHECKOUT_USES, CHECKOUT_PIN, "no `# vX.Y.Z` version comment"),
        (CI, CHECKOUT_USES, f"{CHECKOUT_PIN} # pinned", "version comment"),
        (CI, "permissions:\n  contents: read\n", "", "no top-level `permissions`"),
        (CI, "permissions:\n  contents: read\n", "permissions: write-all\n", "write-all"),
        (CI, "permissions:\n  contents: read\n", "permissions: read-all\n", "read-all"),
        (RELEASE, "permissions:\n  contents: read\n\n", "permissions:\n  packages: write\n\n",
         "top-level write scopes ['packages']"),
        (RELEASE, "    permissions:\n      contents: read\n      packages: write\n",
         "    permissions: write-all\n", "jobs.image: `permissions: write-all`"),
    ],
    ids=["tag", "branch", "short-sha", "no-comment", "comment-not-a-version",
         "no-permissions", "write-all", "read-all", "top-level-write", "job-write-all"],
)  # fmt: skip
def test_workflow_check_refuses(
    tmp_path: Path, source: Path, old: str, new: str, message: str
) -> None:
    result = check_workflows(broken(tmp_path, source, old, new))
    assert result.returncode == 1
    assert message in result.stderr


# What the files do.


def test_ci_runs_exactly_the_readme_commands() -> None:
    jobs = load(CI)["jobs"]
    commands = [s["run"] for job in jobs.values() for s in steps(job) if "run" in s]
    assert commands == ["make lint", "make test"]
    assert jobs["test"]["needs"] == "lint"
    readme = README.read_text(encoding="utf-8")
    makefile = MAKEFILE.read_text(encoding="utf-8")
    for command in commands:
        assert f"`{command}`" in readme
        assert re.search(rf"^{command.split()[1]}:", makefile, re.MULTILINE)


def test_ci_triggers_concurrency_and_limits() -> None:
    workflow = load(CI)
    assert {"push", "pull_request"} <= triggers(workflow).keys()
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in workflow["concurrency"]["group"]
    for job in workflow["jobs"].values():
        assert "permissions" not in job
        assert 0 < job["timeout-minutes"] <= 90  # CI's own limit for the suite


def test_ci_installs_the_makefiles_uv() -> None:
    [pinned] = re.findall(r'"uv==([0-9.]+)"', MAKEFILE.read_text(encoding="utf-8"))
    for job in load(CI)["jobs"].values():
        assert step_using(job, "astral-sh/setup-uv")["with"]["version"] == pinned


def test_release_pushes_the_runtime_image_to_ghcr() -> None:
    workflow = load(RELEASE)
    assert triggers(workflow)["push"] == {"tags": ["v*"]}
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    [job] = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    assert 0 < job["timeout-minutes"] <= 60
    login = step_using(job, "docker/login-action")["with"]
    assert login["registry"] == "ghcr.io"
    assert login["password"] == "${{ secrets.GITHUB_TOKEN }}"
    meta = step_using(job, "docker/metadata-action")
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository }}"
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]
    assert "org.opencontainers.image.source=" in meta["with"]["labels"]
    build = step_using(job, "docker/build-push-action")["with"]
    assert build["target"] == "runtime"
    assert build["push"] is True
    assert build["tags"] == "${{ steps.meta.outputs.tags }}"
    assert build["labels"] == "${{ steps.meta.outputs.labels }}"
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM \S+ AS runtime$", dockerfile, re.MULTILINE)
    # The fallback base image is the Dockerfile's own default.
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert f"PYTHON_IMAGE=${{{{ vars.PYTHON_IMAGE || '{default}' }}}}" in build["build-args"]


def test_an_action_has_one_pin_across_workflows() -> None:
    pins: dict[str, set[str]] = {}
    for path in (CI, RELEASE):
        for job in load(path)["jobs"].values():
            for step in steps(job):
                if "uses" in step:
                    action, sha = step["uses"].split("@")
                    pins.setdefault(action, set()).add(sha)
    assert {action for action, shas in pins.items() if len(shas) > 1} == set()


def test_dependabot_updates_uv_docker_and_actions_weekly() -> None:
    config = load(DEPENDABOT)
    assert config["version"] == 2
    updates = config["updates"]
    assert sorted(u["package-ecosystem"] for u in updates) == ["docker", "github-actions", "uv"]
    for update in updates:
        assert update["directory"] == "/"
        assert update["schedule"]["interval"] == "weekly"
        assert 1 <= update["open-pull-requests-limit"] <= 10
        [group] = update["groups"].values()
        assert sorted(group["update-types"]) == ["minor", "patch"]


def test_pre_commit_runs_the_locked_tools() -> None:
    config = load(PRE_COMMIT)
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert hooks.keys() == {"ruff-check", "ruff-format", "mypy"}
    for hook in hooks.values():
        assert hook["entry"].startswith("uv run --frozen ")
        assert hook["language"] == "unsupported"
    assert hooks["ruff-check"]["entry"].split()[3:5] == ["ruff", "check"]
    assert hooks["ruff-format"]["entry"].split()[3:5] == ["ruff", "format"]
    assert hooks["mypy"]["entry"] == "uv run --frozen mypy"
    # Strict mypy checks the whole program, never only the staged files.
    assert hooks["mypy"]["pass_filenames"] is False
