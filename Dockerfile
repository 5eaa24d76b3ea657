# Shodaku: one image for `shodaku serve` and `shodaku worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SHODAKU_DATABASE_URL=sqlite+aiosqlite:////data/shodaku.db \
    SHODAKU_OUTBOX_DIR=/data/outbox

RUN groupadd --system shodaku \
    && useradd --system --uid 10001 --gid shodaku --home-dir /app --shell /usr/sbin/nologin shodaku \
    && mkdir -p /data \
    && chown shodaku:shodaku /data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY email_templates ./email_templates
RUN pip install --no-cache-dir -e .

# Behind a reverse proxy (the usual case for a container), set the proxy's address or network,
# e.g. `docker run -e SHODAKU_FORWARDED_ALLOW_IPS=172.18.0.0/16 …`: otherwise every visitor
# shares one per-IP signup limit and consent records hold the proxy's address (README, "Behind
# a reverse proxy"). Empty: no proxy trusted; the log warns at the first forwarded request.
ENV SHODAKU_FORWARDED_ALLOW_IPS=

USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
CMD ["shodaku", "serve", "--host", "0.0.0.0", "--port", "8000"]
