# herd, the router (the image also has herd-node, herd-sim and herd-node-services).
#   docker build -t herd . && docker run -p 11435:11435 \
#     -e HERD_NODES='[{name: studio, url: "http://10.0.0.5:11434"}]' herd
# Settings come from HERD_* variables or a mounted file (--config /etc/herd/herd.yaml);
# traces and saved settings live in the volume /var/lib/herd. See docs/deploy.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY core core
COPY plugins plugins
COPY contrib contrib
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HERD_HOST=0.0.0.0 \
    HERD_DATA_DIR=/var/lib/herd \
    HERD_FLEET__DISCOVER_LOCAL=false
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/herd --create-home herd
USER herd
WORKDIR /var/lib/herd
VOLUME /var/lib/herd
EXPOSE 11435
# Liveness (the process serves); a load balancer asks /readyz (a node is online) instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HERD_PORT', '11435'), timeout=4)"]
ENTRYPOINT ["herd"]
