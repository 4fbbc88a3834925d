# The `loyalty` command in a container: `docker run IMAGE serve|consume|project|relay|...`.
# docker-compose.yml runs one container per process against PostgreSQL and Kafka.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# pyproject.toml names README.md as the package's readme and LICENSE as its license file:
# the build needs both. schemas/ and config/ become package data (services/resources
# links to them), so the installed package carries them.
COPY pyproject.toml README.md LICENSE ./
COPY services ./services
COPY schemas ./schemas
COPY config ./config

RUN pip install .

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin loyalty \
    && mkdir -p /app/var \
    && chown loyalty:loyalty /app/var
USER loyalty

ENV LOYALTY_PROGRAM=/app/config/program.toml \
    LOYALTY_HTTP_HOST=0.0.0.0
EXPOSE 8000

ENTRYPOINT ["loyalty"]
CMD ["serve"]
