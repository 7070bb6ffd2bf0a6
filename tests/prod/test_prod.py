"""The production stack: TLS through Caddy, hardened containers, the guard
against placeholder secrets, backup and restore, and a rolling update under
load. The rolling update runs last: it replaces the api containers."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.e2e.conftest import compose, psql, redis_config, wait_for
from tests.prod.conftest import (
    APP_SERVICES,
    PROD_HTTP_URL,
    container_ids,
    env_value,
    inspect,
    inspect_all,
    login,
)


def test_ready_over_https_through_caddy(https: httpx.Client) -> None:
    response = https.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    # The app server's Server header does not leak (Caddy 2.6 answers with
    # its own, 2.11 with none).
    assert response.headers.get_list("server") in ([], ["Caddy"]), response.headers
    assert "max-age" in response.headers["strict-transport-security"]


def test_plain_http_redirects_to_https() -> None:
    response = httpx.get(f"{PROD_HTTP_URL}/health/ready", follow_redirects=False, timeout=10)
    assert response.status_code == 308
    assert response.headers["location"].startswith("https://localhost")


def test_metrics_are_internal_only(https: httpx.Client) -> None:
    assert https.get("/metrics").status_code == 404
    # Caddy hides the path whatever the request carries, the token included.
    token = env_value("METRICS_TOKEN")
    with_token = https.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert with_token.status_code == 404
    # Inside, the api asks for METRICS_TOKEN too (a scraper on the backend
    # network sends it), as it does on Render where no proxy hides the path.
    anonymous = (
        "import urllib.request as u, urllib.error as e\n"
        "try: print(u.urlopen('http://127.0.0.1:8000/metrics', timeout=5).status)\n"
        "except e.HTTPError as x: print(x.code, x.headers['WWW-Authenticate'])"
    )
    refused = compose("exec", "-T", "api", "python", "-c", anonymous).stdout
    assert refused.split() == ["401", "Bearer"]
    scrape = (
        "import os, urllib.request as u\n"
        "auth = {'Authorization': 'Bearer ' + os.environ['METRICS_TOKEN']}\n"
        "r = u.Request('http://127.0.0.1:8000/metrics', headers=auth)\n"
        "print(u.urlopen(r, timeout=5).read().decode())"
    )
    inside = compose("exec", "-T", "api", "python", "-c", scrape).stdout
    assert "appstack_http_requests_total" in inside


def test_logs_are_json_lines_with_the_request_id(https: httpx.Client) -> None:
    rid = f"prod-{uuid.uuid4().hex}"
    assert https.get("/health/live", headers={"X-Request-ID": rid}).status_code == 200
    assert https.get("/api/v1/users/me", headers={"X-Request-ID": rid}).status_code == 401

    def entries() -> list[dict[str, object]]:
        found = []
        for line in compose("logs", "--no-color", "--no-log-prefix", "api").stdout.splitlines():
            if rid in line:
                found.append(json.loads(line))
        return found

    logged = wait_for(entries, timeout=10, what="the api's JSON log line")
    assert logged[0]["request_id"] == rid
    assert logged[0]["status"] == 401
    assert logged[0]["route"] == "/api/v1/users/me"
    # Every api line is JSON, gunicorn's own included.
    for line in compose("logs", "--no-color", "--no-log-prefix", "api").stdout.splitlines():
        json.loads(line)


def test_app_containers_are_non_root_read_only_and_without_privileges() -> None:
    for service in APP_SERVICES:
        for details in inspect_all(service):  # every replica
            host = details["HostConfig"]
            assert details["Config"]["User"] not in ("", "0", "root", "0:0"), service
            assert host["ReadonlyRootfs"] is True, service
            assert host["CapDrop"] == ["ALL"], service
            assert not host["CapAdd"], service
            assert "no-new-privileges:true" in host["SecurityOpt"], service
            for limit in ("Memory", "NanoCpus", "PidsLimit"):
                assert host[limit] > 0, f"{service} has no {limit} limit"
            assert host["RestartPolicy"]["Name"] == "unless-stopped", service
            assert host["LogConfig"]["Type"] == "json-file", service
            assert {"max-size", "max-file"} <= set(host["LogConfig"]["Config"]), service
        uid = compose("exec", "-T", service, "id", "-u").stdout.strip()
        assert uid not in ("", "0"), f"{service} runs as uid {uid}"
        # Read-only where the code lives, writable where it must be.
        denied = compose("exec", "-T", service, "touch", "/app/x", check=False)
        assert denied.returncode != 0, service
        assert "Read-only file system" in denied.stderr, service
        for scratch in ("/tmp/x", "/dev/shm/x"):  # noqa: S108 (inside the container)
            compose("exec", "-T", service, "touch", scratch)


def test_only_the_proxy_publishes_ports() -> None:
    for service in ("db", "redis", *APP_SERVICES):
        for details in inspect_all(service):
            assert not details["HostConfig"]["PortBindings"], service
            bound = [b for b in details["NetworkSettings"]["Ports"].values() if b]
            assert bound == [], f"{service} publishes {bound}"
    caddy = inspect("caddy")["HostConfig"]["PortBindings"]
    assert set(caddy) == {"80/tcp", "443/tcp", "443/udp"}
    assert {b["HostIp"] for bindings in caddy.values() for b in bindings} == {"127.0.0.1"}


def test_api_trusts_forwarded_headers_only_from_the_proxy_network() -> None:
    subnet = ipaddress.ip_network(env_value("PROXY_SUBNET"))
    for api in inspect_all("api"):
        env = dict(item.split("=", 1) for item in api["Config"]["Env"])
        assert env["FORWARDED_ALLOW_IPS"] == str(subnet)
    # The edge network holds exactly the proxy and the api replicas.
    edge = next(n for n in inspect("caddy")["NetworkSettings"]["Networks"] if n.endswith("_edge"))
    for service in ("caddy", "api"):
        for details in inspect_all(service):
            address = details["NetworkSettings"]["Networks"][edge]["IPAddress"]
            assert ipaddress.ip_address(address) in subnet, service
    for service in ("db", "redis", "worker", "scheduler"):
        for details in inspect_all(service):
            assert edge not in details["NetworkSettings"]["Networks"], service


def test_placeholder_secrets_refuse_to_start() -> None:
    """With .env.prod.example as it ships, the app containers exit at once."""
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": "appstack-guardtest",
        "COMPOSE_ENV_FILES": ".env.prod.example",
        "APP_ENV_FILE": ".env.prod.example",
        "APP_IMAGE": env_value("APP_IMAGE"),  # the image built for this run
    }

    def guarded(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args], env=env, capture_output=True, text=True, timeout=120
        )

    try:
        refused = guarded("run", "--rm", "--no-deps", "migrate")
    finally:
        guarded("down", "-v", "--remove-orphans")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "refusing to start in production" in output, output
    assert "SECRET_KEY is a placeholder" in output, output
    assert "DATABASE_URL has a missing or placeholder password" in output, output
    assert "METRICS_TOKEN is a placeholder" in output, output
    assert "DATABASE_OWNER_URL has a missing or placeholder password" in output, output
    assert "REDIS_URL has a placeholder password" in output, output


def script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one of deploy/vm's scripts with extra environment variables."""
    return subprocess.run(
        [f"deploy/vm/{name}", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_script(name: str, *args: str, **env: str) -> str:
    """Run a script that must succeed; its standard output."""
    done = script(name, *args, **env)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_backup_wipe_and_restore_bring_the_rows_back(
    https: httpx.Client, account: dict[str, str], tmp_path: Path
) -> None:
    headers = {"Authorization": account["Authorization"]}
    skus = [f"backup-{n}" for n in range(3)]
    for sku in skus:
        created = https.post(
            "/api/v1/items",
            json={"sku": sku, "name": f"Item {sku}", "price": "2.50", "quantity": 4},
            headers=headers,
        )
        assert created.status_code == 201, created.text

    backups = tmp_path / "backups"
    dumps = []
    for _ in range(3):  # BACKUP_KEEP=2: the oldest of three is deleted
        dumps.append(
            Path(run_script("backup.sh", BACKUP_DIR=str(backups), BACKUP_KEEP="2").strip())
        )
        time.sleep(1.1)  # file names carry the second
    assert sorted(backups.iterdir()) == sorted(dumps[1:])
    assert dumps[-1].read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert dumps[-1].stat().st_mode & 0o077 == 0  # every row is in it: owner only

    # A file that is no archive is refused before anything changes.
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"not a dump at all")
    refused = script("restore.sh", str(garbage), BACKUP_DIR=str(backups))
    assert refused.returncode == 2, refused.stderr
    assert "nothing was changed" in refused.stderr
    # With a managed database the scripts refuse: they would copy the idle db.
    managed = script("backup.sh", BACKUP_DIR=str(backups), DATABASE_URL="postgresql://u:p@h/db")
    assert managed.returncode == 2, managed.stderr
    assert "outside this stack" in managed.stderr
    assert psql("SELECT count(*) FROM items WHERE sku LIKE 'backup-%'") == "3"

    # Wipe: the database volume is deleted and Postgres starts empty.
    compose("stop", "api", "worker", "scheduler", "db")
    compose("rm", "-f", "db")
    volume = f"{os.environ['COMPOSE_PROJECT_NAME']}_db-data"
    subprocess.run(["docker", "volume", "rm", volume], check=True, capture_output=True)
    compose("up", "-d", "--wait", "db")
    assert psql("SELECT to_regclass('items') IS NULL") == "t"

    run_script("restore.sh", str(dumps[-1]), BACKUP_DIR=str(backups))
    # It backed up the (empty) database it replaced first.
    assert len(list(backups.iterdir())) == 3  # the two before, and that one

    headers = login(https, account["email"])  # the user is back
    listed = https.get("/api/v1/items", params={"limit": 100}, headers=headers)
    assert listed.status_code == 200, listed.text
    assert sorted(item["sku"] for item in listed.json()["items"]) == skus


def test_rolling_update_of_the_api_under_load_fails_no_request(
    https: httpx.Client, account: dict[str, str]
) -> None:
    headers = {"Authorization": account["Authorization"]}
    created = https.post(
        "/api/v1/items",
        json={"sku": "rolling", "name": "Rolling", "price": "1.00", "quantity": 1},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    item_url = f"/api/v1/items/{created.json()['id']}"
    old_api = container_ids("api")

    outcomes: list[tuple[str, int | str]] = []
    stop = threading.Event()

    def load() -> None:
        """About 5 requests a second, reads and writes, until told to stop."""
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 2:
                    status: int | str = https.get(item_url, headers=headers).status_code
                    outcomes.append(("GET", status))
                else:
                    response = https.post(
                        "/api/v1/items",
                        json={"sku": f"rolling-{n}", "name": "R", "price": "1.00", "quantity": 1},
                        headers=headers,
                    )
                    outcomes.append(("POST", response.status_code))
            except httpx.HTTPError as exc:
                outcomes.append(("ERROR", repr(exc)))
            time.sleep(0.2)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_for(lambda: len(outcomes) >= 5, timeout=30, what="the load to start")
        started = time.monotonic()
        run_script("deploy.sh")
        seconds = time.monotonic() - started
        served = len(outcomes)
        time.sleep(2)  # and a little after
    finally:
        stop.set()
        loader.join(timeout=60)

    new_api = container_ids("api")
    replicas = int(env_value("API_REPLICAS"))
    assert len(old_api) == len(new_api) == replicas, (old_api, new_api)  # every one replaced
    assert not set(new_api) & set(old_api), (old_api, new_api)
    assert len(container_ids("worker")) == int(env_value("WORKER_REPLICAS"))
    failed = [o for o in outcomes if o[1] not in (200, 201)]
    print(
        f"\nrolling update: {seconds:.1f}s, {served} requests during it "
        f"({len(outcomes)} in all), {len(failed)} failed"
    )
    assert failed == []
    assert https.get("/health/ready").status_code == 200


def test_redis_keeps_what_it_is_given() -> None:
    """The broker survives a restart (append-only file) and refuses writes
    rather than evicting queued messages when full."""
    assert redis_config("appendonly", "maxmemory-policy") == {
        "appendonly": "yes",
        "maxmemory-policy": "noeviction",
    }


def test_redis_refuses_commands_without_the_password() -> None:
    """REDIS_PASSWORD (requirepass): NOAUTH without it; the app containers
    carry it in REDIS_URL and are healthy with it."""
    anonymous = compose("exec", "-T", "redis", "env", "-u", "REDISCLI_AUTH", "redis-cli", "ping")
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr, anonymous
    wrong = compose("exec", "-T", "-e", "REDISCLI_AUTH=wrong", "redis", "redis-cli", "ping")
    assert "PONG" not in wrong.stdout, wrong
    assert compose("exec", "-T", "redis", "redis-cli", "ping").stdout.strip() == "PONG"
    password = env_value("REDIS_PASSWORD")
    assert len(password) >= 32
    for service in APP_SERVICES:
        for details in inspect_all(service):
            env = details["Config"]["Env"]
            assert f"REDIS_URL=redis://:{password}@redis:6379/0" in env, service
            if service != "scheduler":  # no healthcheck: it only sends messages
                assert details["State"]["Health"]["Status"] == "healthy", service


# Run in the api container with its own environment: who it connects as,
# and what that role may do.
ROLE_PROBE = """
import asyncio, os, asyncpg
async def main():
    c = await asyncpg.connect(os.environ["DATABASE_URL"])
    print(await c.fetchval("SELECT current_user"))
    print(await c.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    for sql in ("CREATE TABLE probe (id int)", "COPY (SELECT 1) TO PROGRAM 'true'"):
        try:
            await c.execute(sql)
            print("allowed")
        except asyncpg.InsufficientPrivilegeError:
            print("refused")
    print(await c.fetchval("SELECT count(*) FROM users") >= 0)
    print(repr(os.environ.get("DATABASE_OWNER_URL")), repr(os.environ.get("POSTGRES_PASSWORD")))
asyncio.run(main())
"""


def test_the_app_connects_as_a_role_that_owns_nothing() -> None:
    """The api's role is the app role: no superuser, no DDL, no programs;
    the tables belong to the owner (after the restore above, too), and the
    api's environment holds neither the owner's URL nor its password."""
    app_user = env_value("POSTGRES_APP_USER")
    lines = compose("exec", "-T", "api", "python", "-c", ROLE_PROBE).stdout.split("\n")
    assert lines[:6] == [app_user, "False", "refused", "refused", "True", "'' ''"], lines
    owner = env_value("POSTGRES_USER")
    assert app_user != owner
    tables = psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert tables == owner
