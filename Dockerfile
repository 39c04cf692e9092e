# syntax=docker/dockerfile:1
# The rasd image: one image for every rasd service in docker-compose.yml
# (`rasd worker <stage>`, `rasd topics create`, `rasd index create`, ...).
# See docs/deploy.md.
# Pinned by version; PYTHON_IMAGE_DIGEST (sha256:..., from .env) pins the image
# itself. docs/deploy.md, "Images", tells how to refresh both.
ARG PYTHON_IMAGE_DIGEST=
FROM python:3.12.8-slim-bookworm${PYTHON_IMAGE_DIGEST:+@}${PYTHON_IMAGE_DIGEST}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with a home (the demo writes its feed list under
# ~/.local/state/rasd).
RUN groupadd --system --gid 10001 rasd \
 && useradd --system --uid 10001 --gid rasd --create-home --home-dir /home/rasd \
        --shell /usr/sbin/nologin rasd \
 && install -d -o 1000 -g 0 -m 0755 /certs \
 && install -d -o rasd -g rasd -m 0700 /home/rasd/.local /home/rasd/.local/state \
        /home/rasd/.local/state/rasd /home/rasd/.local/state/rasd/dedupe
# /certs: the compose certs volume starts as this directory, owned by uid 1000,
# the user of the Kafka, Elasticsearch and Kibana images, which read their keys
# from it; the certs service writes it as that user, rasd's services read the CA.
# .../rasd/dedupe: the cluster service's snapshot volume starts as this
# directory, so the rasd user can write it.

# Exactly the runtime lock (hashes checked, nothing resolved: --no-deps), then
# rasd itself without dependencies, as scripts/smoke does; no dev or test
# extras. pip must be at least 23.3 (see README, "Installing").
WORKDIR /src
COPY requirements/runtime.txt ./requirements/runtime.txt
RUN python -c 'import pip, sys; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (23, 3))' \
 || { echo "error: pip >= 23.3 is needed" >&2; exit 1; }
RUN pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY connectors ./connectors
COPY rasd ./rasd
RUN pip install --no-deps . \
 && pip check \
 && rm -rf /src

# Data files read at run time. Installed with pip, the package no longer sits
# next to config/, so RASD_CONFIG_DIR and RASD_DEMO_SITE point rasd at these copies.
WORKDIR /app
COPY config ./config
COPY tests/fixtures/site ./tests/fixtures/site
ENV RASD_CONFIG_DIR=/app/config \
    RASD_DEMO_SITE=/app/tests/fixtures/site

USER rasd
ENTRYPOINT ["rasd"]
CMD ["--help"]
