FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PAPIBOT_DATA_DIR=/data PAPIBOT_HTTP_HOST=0.0.0.0 PAPIBOT_HTTP_PORT=8080
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 papibot && mkdir /data && chown papibot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY scheduler ./scheduler
COPY framework_data ./framework_data
RUN pip install --no-cache-dir . && chown -R papibot /app
USER papibot
ENV PAPIBOT_FRAMEWORK_DIR=/app/framework_data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["sh", "-c", "papibot init && papibot plan && exec papibot run"]
