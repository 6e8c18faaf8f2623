# The dispatch-rl worker image: the optimizer agent or the dataset writer (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY optimizer ./optimizer
COPY streams ./streams
# The worker serves the learned policy with numpy: no torch in this image (training needs
# `pip install '.[train]'`, e.g. `--extra-index-url https://download.pytorch.org/whl/cpu`).
RUN pip install -c constraints.txt .

RUN useradd --uid 10001 --create-home dispatch \
    && mkdir -p /data/state /data/dataset /data/models \
    && chown -R dispatch /data
USER dispatch
# Everything durable (dataset, audit store, models, runtime state) under one mount point.
VOLUME ["/data"]

ENV DISPATCH_RL_DATA_DIR=/data \
    DISPATCH_RL_STATE_DIR=/data/state \
    DISPATCH_RL_DATASET_DIR=/data/dataset \
    DISPATCH_RL_MODEL_DIR=/data/models \
    DISPATCH_RL_LOG_FORMAT=json
EXPOSE 6066

ENTRYPOINT ["python", "-m", "streams.cli"]
CMD ["run"]
