# budapp and budapp-sim images. Build:
#   docker build -t budapp/budapp:latest .                 (the control plane: API, gateway, CLI)
#   docker build -t budapp/budapp-sim:latest --target sim .  (the inference simulator)
# Both run as an unprivileged user on a read-only root filesystem; data goes to /var/lib/budapp.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with budapp installed as a wheel, no dev dependencies -------
FROM ${PYTHON_IMAGE} AS build
RUN pip install --no-cache-dir uv==0.9.8
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3
COPY src ./src
COPY migrations ./migrations
RUN uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python3

# --- the shared runtime base: no compiler, no uv, no pip cache ------------------------------
FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 10001 budapp \
 && useradd --system --uid 10001 --gid budapp --home-dir /var/lib/budapp --shell /usr/sbin/nologin budapp \
 && mkdir -p /var/lib/budapp \
 && chown budapp:budapp /var/lib/budapp
COPY --from=build /src/.venv /opt/budapp
ENV PATH=/opt/budapp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/budapp
USER 10001:10001
# uvicorn finishes the requests in flight on SIGTERM, then budapp's shutdown hooks run
# (BUDAPP_SHUTDOWN_TIMEOUT_SECONDS bounds it).
STOPSIGNAL SIGTERM

# --- budapp-sim: `--target sim` ---------------------------------------------------------------
FROM base AS sim
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["budapp-sim"]
CMD ["--host", "0.0.0.0", "--port", "8000"]

# --- budapp (the default target) --------------------------------------------------------------
FROM base AS budapp
ENV BUDAPP_DATA_DIR=/var/lib/budapp \
    BUDAPP_HOST=0.0.0.0 \
    BUDAPP_PORT=9081
VOLUME ["/var/lib/budapp"]
EXPOSE 9081 9082
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('BUDAPP_PORT', '9081'), timeout=4)"]
ENTRYPOINT ["budapp"]
CMD ["serve"]
