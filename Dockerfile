# syntax=docker/dockerfile:1
# agent-runtime server image: build the abi3 wheel with maturin, install it into a slim Python
# image, run as a non-root user. Tool modules go in /app/tools (mount or COPY them in a derived
# image); see deploy/README.md.

FROM rust:1.88-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --no-cache-dir "maturin>=1.7,<2"
WORKDIR /src
COPY . .
RUN /opt/maturin/bin/maturin build --release --features abi3 --out /dist

FROM python:3.12-slim-bookworm
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm -f /tmp/*.whl \
    && useradd --create-home --uid 10001 agent \
    && mkdir -p /app/tools && chown agent /app/tools
USER 10001
WORKDIR /app
# gRPC (PythonService + grpc.health.v1) and MCP over streamable HTTP. Listening beyond loopback
# needs --allow-remote and a token: set AGENT_RUNTIME_TOKEN (a Kubernetes Secret, see deploy/).
EXPOSE 50051 8000
ENTRYPOINT ["agent-runtime"]
CMD ["--path", "/app/tools", "serve", "--grpc", "0.0.0.0:50051", "--mcp-http", "0.0.0.0:8000", "--allow-remote"]
