# The `loyalty` command in a container: `docker run IMAGE serve|consume|project|relay|...`.
# docker-compose.yml runs one container per process against PostgreSQL and Kafka.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies first, from pyproject.toml alone: a change to the code (the usual
# change) reuses this layer, and only a change to the dependencies installs them again.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the code. pyproject.toml names README.md as the package's readme and LICENSE as its
# license file: the build needs both. schemas/ and config/ become package data
# (services/resources links to them), so the installed package carries them.
COPY README.md LICENSE ./
COPY services ./services
COPY schemas ./schemas
COPY config ./config

RUN pip install --no-deps .

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin loyalty \
    && mkdir -p /app/var \
    && chown loyalty:loyalty /app/var
USER loyalty

# LOYALTY_HEALTH_URL: what the health check asks. The default suits `serve`; for the
# other processes point it at their metrics port, e.g. http://127.0.0.1:9101/metrics for
# `consume` (9103 project, 9102 relay). docker-compose.yml sets its own checks.
ENV LOYALTY_PROGRAM=/app/config/program.toml \
    LOYALTY_HTTP_HOST=0.0.0.0 \
    LOYALTY_HEALTH_URL=http://127.0.0.1:8000/healthz
EXPOSE 8000 9101 9102 9103 9104

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['LOYALTY_HEALTH_URL'], timeout=3)"]

ENTRYPOINT ["loyalty"]
CMD ["serve"]
