"""deploy/prod-env.sh: a new production env file, and the secrets a later
release added appended to an existing one.

Needs no stack, only the script and .env.prod.example, so it lives here (run
from the host by ``make test``) rather than in tests/unit, which also runs in
the test image: that image has no .env.prod.example.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "prod-env.sh"
GENERATED = {
    "SECRET_KEY": 64,
    "POSTGRES_PASSWORD": 48,
    "POSTGRES_APP_PASSWORD": 48,
    "REDIS_PASSWORD": 48,
    "METRICS_TOKEN": 64,
}


def values(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}


def run(*args: str) -> str:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], check=True, capture_output=True, text=True
    ).stdout


def test_a_new_file_has_every_secret_generated(tmp_path: Path) -> None:
    out = tmp_path / ".env.prod.local"
    run(str(out), "HTTPS_PORT=9443")
    written = values(out)
    for key, length in GENERATED.items():
        assert re.fullmatch(f"[0-9a-f]{{{length}}}", written[key]), key
    assert written["HTTPS_PORT"] == "9443"
    assert out.stat().st_mode & 0o077 == 0


def test_an_old_file_gets_only_the_secrets_it_lacks(tmp_path: Path) -> None:
    """A file from before METRICS_TOKEN and the app role's and Redis's
    passwords: those are appended, everything else stays as it was."""
    old = tmp_path / ".env.prod"
    old.write_text("DOMAIN=example.com\nSECRET_KEY=kept\nPOSTGRES_PASSWORD=also-kept\n")
    said = run("--add-missing", str(old))
    assert said.endswith("added POSTGRES_APP_PASSWORD REDIS_PASSWORD METRICS_TOKEN\n"), said
    written = values(old)
    assert written["DOMAIN"] == "example.com"
    assert written["SECRET_KEY"] == "kept"
    assert written["POSTGRES_PASSWORD"] == "also-kept"
    for key in ("POSTGRES_APP_PASSWORD", "REDIS_PASSWORD", "METRICS_TOKEN"):
        assert re.fullmatch(f"[0-9a-f]{{{GENERATED[key]}}}", written[key]), key
    before = old.read_text()
    assert "already set" in run("--add-missing", str(old))
    assert old.read_text() == before
