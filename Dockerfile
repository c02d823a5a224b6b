# The demo service, and the fleet's shared Lark inbox (see docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY lark_alert_middleware ./lark_alert_middleware
RUN pip install ".[demo]"
COPY demo_app ./demo_app

USER nobody
EXPOSE 8000
CMD ["uvicorn", "demo_app.app:app", "--host", "0.0.0.0", "--port", "8000"]
