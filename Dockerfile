# syntax=docker/dockerfile:1
# Build a wheel in one stage, install it into a clean slim image in the next; run as non-root.
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CARELINE_DATABASE_URL=sqlite+aiosqlite:////data/careline.db
RUN useradd --create-home --uid 10001 careline \
    && mkdir /data && chown careline:careline /data
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
USER careline
WORKDIR /home/careline
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz').status == 200 else 1)"
# PostgreSQL in production: -e CARELINE_DATABASE_URL=postgresql+asyncpg://user:pass@db/careline
CMD ["careline", "serve", "--host", "0.0.0.0", "--port", "8000"]
