# syntax=docker/dockerfile:1
# The rasd image: one image for every rasd service in docker-compose.yml
# (`rasd worker <stage>`, `rasd topics create`, `rasd index create`, ...).
# See docs/deploy.md.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with a home (the demo writes its feed list under
# ~/.local/state/rasd).
RUN groupadd --system --gid 10001 rasd \
 && useradd --system --uid 10001 --gid rasd --create-home --home-dir /home/rasd \
        --shell /usr/sbin/nologin rasd

# Only what the package needs to build; no dev or test extras.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY connectors ./connectors
COPY rasd ./rasd
RUN pip install . \
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
