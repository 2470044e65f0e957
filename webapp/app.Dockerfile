# The webapp alone, for hosts where `disco registrator` announces containers from their labels
# (docker-compose.yml, profile `registrator`): no Consul agent, no supervisord, no disco inside.
# Build from the repository root:  docker build -f webapp/app.Dockerfile .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY webapp/app.py /app/app.py
USER nobody
ENV PORT=8080 STOP_GRACE=2
EXPOSE 8080
CMD ["sh", "-c", "exec python3 /app/app.py --port \"$PORT\" --fail-file /tmp/fail"]
