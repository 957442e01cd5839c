# Homework Bridge: the service image. Mount the YAML config at /config/config.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BRIDGE_TEMPLATES_DIR=/app/templates

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY connectors ./connectors
COPY templates ./templates
RUN pip install ".[postgres]" \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bridge \
    && mkdir -p /data /config && chown bridge:bridge /data

USER bridge
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["bridge", "run"]
CMD ["--config", "/config/config.yaml"]
