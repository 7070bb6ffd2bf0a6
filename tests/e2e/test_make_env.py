"""`make env`: a new .env is .env.example with a fresh random SECRET_KEY.

Needs no stack, only the Makefile, .env.example and GNU make, so it lives
here (run from the host by ``make test``) rather than in tests/unit, which
also runs in the test image: that image has neither make nor those files.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from core.settings_checks import PLACEHOLDER_SECRETS

REPO = Path(__file__).resolve().parents[2]
FILES = ("Makefile", ".env.example")

missing = [name for name in FILES if not (REPO / name).is_file()]
pytestmark = [
    pytest.mark.skipif(
        bool(missing), reason=f"{', '.join(missing)} not in {REPO} (not a checkout of the repo)"
    ),
    pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not on PATH"),
]


def make_env(directory: Path) -> subprocess.CompletedProcess[str]:
    # Not the flags of a make this test may run under (`make test`).
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "env"], cwd=directory, env=env, capture_output=True, text=True, timeout=60
    )


def fresh_copy(directory: Path) -> Path:
    """The Makefile and .env.example alone in ``directory`` (which has no
    ../shared/docker/images.env: the Makefile must not need it)."""
    directory.mkdir()
    for name in FILES:
        shutil.copy(REPO / name, directory / name)
    return directory


def secret_key(env_file: Path) -> str:
    keys = [
        line.removeprefix("SECRET_KEY=")
        for line in env_file.read_text().splitlines()
        if line.startswith("SECRET_KEY=")
    ]
    assert len(keys) == 1, keys
    return keys[0]


def test_a_new_env_gets_a_fresh_random_secret_key(tmp_path: Path) -> None:
    directory = fresh_copy(tmp_path / "checkout")
    done = make_env(directory)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "created .env from .env.example with a fresh random SECRET_KEY"
    ]

    env_file = directory / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    key = secret_key(env_file)
    assert key not in PLACEHOLDER_SECRETS
    assert len(key) >= 43  # 32 random bytes, base64
    example = (directory / ".env.example").read_text().splitlines()
    written = env_file.read_text().splitlines()
    assert len(written) == len(example)
    for old, new in zip(example, written, strict=True):
        if old.startswith("SECRET_KEY="):
            assert new == f"SECRET_KEY={key}"
        else:
            assert new == old
    assert not list(directory.glob(".env.new*")), "a temporary file was left behind"


def test_each_new_env_gets_its_own_key(tmp_path: Path) -> None:
    keys = []
    for name in ("one", "two"):
        directory = fresh_copy(tmp_path / name)
        assert make_env(directory).returncode == 0
        keys.append(secret_key(directory / ".env"))
    assert keys[0] != keys[1]


def test_an_existing_env_is_left_alone(tmp_path: Path) -> None:
    directory = fresh_copy(tmp_path / "checkout")
    assert make_env(directory).returncode == 0
    env_file = directory / ".env"
    generated = env_file.read_text()
    before = env_file.stat()

    again = make_env(directory)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created" not in again.stdout
    assert env_file.read_text() == generated
    assert env_file.stat().st_mtime_ns == before.st_mtime_ns

    # A .env of one's own, placeholder and permissions included, is not ours to fix.
    env_file.write_text("SECRET_KEY=changethis-development-only-secret-key\nLOG_LEVEL=DEBUG\n")
    env_file.chmod(0o644)
    own = make_env(directory)
    assert own.returncode == 0, own.stdout + own.stderr
    assert env_file.read_text() == (
        "SECRET_KEY=changethis-development-only-secret-key\nLOG_LEVEL=DEBUG\n"
    )
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o644
