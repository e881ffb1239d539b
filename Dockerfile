# The emulator on the CPU, offline: installs the package and runs the demo by default.
#   docker build -t emulator .
#   docker run --rm -v "$PWD/outputs:/app/outputs" emulator              # make demo
#   docker run --rm emulator emulator --help                             # any subcommand
#   docker run --rm -v "$PWD/nightly:/app/nightly" emulator emulator nightly --config configs/nightly.yaml --output nightly
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends make python-cartopy-data \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md Makefile ./
COPY emulator ./emulator
COPY pipelines ./pipelines
COPY benchmarks ./benchmarks
COPY configs ./configs
COPY checkpoints ./checkpoints
COPY notebooks ./notebooks

RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir --upgrade pip \
    && /app/.venv/bin/pip install --no-cache-dir -e . \
    && touch /app/.venv/.installed

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1

CMD ["make", "demo"]
