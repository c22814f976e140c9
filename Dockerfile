# Bookworm: the same `bookworm` entry point as a local install.
# Without BOOKWORM_DATABASE_URL / BOOKWORM_REDIS_URL it starts its embedded PostgreSQL and Valkey
# (data in /home/bookworm/data); compose.yaml sets both URLs and runs PostgreSQL 15 and Redis 7.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# PostgreSQL (embedded or not) refuses to run as root, and an API has no business being root.
# The data directory exists before VOLUME, so a new volume inherits its owner instead of root.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bookworm \
    && install -d -o bookworm -g bookworm /home/bookworm/data

WORKDIR /src
# The pinned, hash-checked dependencies first (a layer that code changes leave alone), then the project.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-deps . && pip check && rm -rf /src/build

USER bookworm
WORKDIR /home/bookworm
ENV BOOKWORM_DATA_DIR=/home/bookworm/data
VOLUME ["/home/bookworm/data"]
EXPOSE 8000

ENTRYPOINT ["bookworm"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
