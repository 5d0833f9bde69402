# The web image: the app without the training extra (workers build FROM this with `.[train]`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/prefloop

COPY pyproject.toml README.md ./
COPY app ./app
COPY trainer ./trainer
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY alembic.ini ./
RUN pip install -e . && useradd --system --uid 1000 prefloop
USER prefloop

EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["prefloop", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
