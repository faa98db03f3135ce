# meter-sync: API + webhook receiver (`serve`), worker, migrations; one image for all roles.

# ---- builder: the package and its dependencies in a venv ---------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir .

# ---- runtime: slim, non-root, only the venv ----------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed uid/gid so volumes and Kubernetes securityContext can name it.
RUN groupadd --system --gid 10001 meter-sync \
    && useradd --system --no-log-init --uid 10001 --gid meter-sync \
       --home-dir /var/lib/meter-sync --create-home --shell /usr/sbin/nologin meter-sync

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
# STATE_DIR (./.meter-sync) resolves here: writable by the service user.
WORKDIR /var/lib/meter-sync

# The base image ships tzdata (/usr/share/zoneinfo); trade dates need the market zones.
RUN python -c "import zoneinfo; zoneinfo.ZoneInfo('America/Los_Angeles'); import app.cli"

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

CMD ["meter-sync", "serve", "--host", "0.0.0.0"]
