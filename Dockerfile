# oiradar in a container: `oiradar watch` by default, the store in the /data volume.
#   docker build -t oiradar .
#   docker run -d -v oiradar-data:/data oiradar watch --top 50 --retain 90d
# contrib/compose.yaml runs it on PostgreSQL. Not built in CI (no Docker daemon there):
# tests/test_deploy.py checks the commands it runs and lints it with hadolint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/data \
    OIRADAR_DB=/data/oiradar.sqlite

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY scripts/hatch_build.py scripts/
COPY src/ src/
# The postgres extra too, so one image serves both stores (OIRADAR_DB=postgresql://...).
# DL3013: this checkout is installed; its dependencies' ranges are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[postgres]" \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin oiradar \
    && mkdir -p /data \
    && chown oiradar:oiradar /data \
    && rm -rf /src

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# The dashboard (`watch --serve`): in a container it must listen on 0.0.0.0, which oiradar
# allows only with a token (OIRADAR_SERVE_TOKEN); publish it on the host's loopback.
EXPOSE 8000
# Healthy while the daemon publishes `running` in the store (stale after a hang or a crash).
HEALTHCHECK --interval=60s --timeout=20s --start-period=300s --retries=3 \
    CMD ["oiradar", "status", "--check"]
ENTRYPOINT ["oiradar"]
CMD ["watch", "--top", "30"]
