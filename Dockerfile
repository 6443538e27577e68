# syntax=docker/dockerfile:1
# One image for every app process: `backline serve` (default), `backline migrate`,
# `backline worker`. See docker-compose.yml for the scaled-out stack.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: resolve the locked dependencies into /app/.venv ----
FROM ${PYTHON_IMAGE} AS build

# Byte-compile now so containers don't pay for it at every start; copy (not
# hardlink) because the uv cache and the venv may sit on different filesystems.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

RUN pip install --no-cache-dir uv

WORKDIR /app

# Dependencies first, on their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# README.md is the project's `readme`; hatchling refuses to build without it.
COPY README.md schema.graphql ./
COPY backend/ backend/
COPY workers/ workers/
COPY migrations/ migrations/
# Editable on purpose: backend/core/migrations.py finds migrations/ next to the
# source, so the code must run from /app rather than from site-packages.
RUN uv sync --frozen --no-dev

# ---- runtime ----
FROM ${PYTHON_IMAGE} AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# Fixed ids so a bind-mounted /data can be chowned to match on the host.
RUN groupadd --system --gid 10001 backline \
    && useradd --system --uid 10001 --gid backline --home-dir /app --no-create-home backline \
    && mkdir -p /data \
    && chown backline:backline /data

WORKDIR /app

# Code and venv stay root-owned (read-only to the app); only /data is writable.
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/backend /app/backend
COPY --from=build /app/workers /app/workers
COPY --from=build /app/migrations /app/migrations
COPY --from=build /app/pyproject.toml /app/schema.graphql /app/
# The trusted documents our own front end sends (backend/graphql/persisted/trusted.py).
COPY frontend-contract/persisted-documents.json /app/frontend-contract/

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BACKLINE_DATA_DIR=/data \
    BACKLINE_HOST=0.0.0.0 \
    BACKLINE_PORT=8000

VOLUME /data
USER backline
EXPOSE 8000

CMD ["backline", "serve"]
