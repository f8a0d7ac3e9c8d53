# The one image of autodeploy: every process is `autodeploy <command>` (webhooks, worker, deploy-agent, lag-exporter);
# the manifests in k8s/ choose the command with `args`. Build: docker build -t ghcr.io/autodeploy/autodeploy:<tag> .
# The base is pinned to an exact Python release; CI may pin it harder with `--build-arg PYTHON_IMAGE=...@sha256:...`.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Wheels are built in a throwaway stage so the runtime image carries no build tools, source tree or pip cache.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed numeric uid, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 autodeploy \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/autodeploy --create-home \
       --shell /usr/sbin/nologin autodeploy
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The topic catalog and its schemas are data, not package files: the installed package finds them through this path.
COPY topics /opt/autodeploy/topics
# The demo policies; in Kubernetes the autodeploy-config ConfigMap is mounted over /etc/autodeploy.
COPY autodeploy.yaml /etc/autodeploy/autodeploy.yaml
ENV AUTODEPLOY_TOPICS_CATALOG=/opt/autodeploy/topics/catalog.yaml \
    AUTODEPLOY_CONFIG=/etc/autodeploy/autodeploy.yaml \
    AUTODEPLOY_CACHE_DIR=/tmp/autodeploy \
    HOME=/home/autodeploy
USER 10001:10001
WORKDIR /home/autodeploy
# webhooks, worker (Faust web), deploy agent metrics, lag exporter metrics
EXPOSE 8080 6066 9102 9103
ENTRYPOINT ["autodeploy"]
CMD ["--help"]
