# The volsync-addon image: the hub (volsync-hub), the agent (volsync-agent) and the rsync-over-ssh
# mover (volsync-mover) in one image, named quay.io/volsync-addon/volsync-addon:<package version>.
#
# Online (a developer's machine, registry and PyPI reachable):
#   podman build -t quay.io/volsync-addon/volsync-addon:0.1.0 .      (or docker build)
# Offline (scripts/image; what the test suite runs): BASE_IMAGE is a debootstrap of bookworm that
# already holds DEBIAN_PACKAGES (the apt step is then skipped), and WHEELHOUSE names a folder of the
# build context with wheels of all dependencies and of the build backend (pip then uses no index).
#
# It also carries what an embedded cluster needs inside a container (`volsync-cluster`, the services
# of docker-compose.yml, which run it as root in privileged containers): bubblewrap (Pods), busybox
# (busybox images), nftables and iproute2 (the Pod network), util-linux (nsenter, setpriv), procps.
#
# The default user is 65532 (nonroot): the hub and the agent need nothing more. Mover Jobs run as
# root themselves (securityContext runAsUser 0, capabilities dropped to what sshd/rsync need) on a
# read-only root filesystem with emptyDirs at /tmp and /var/lib/volsync-mover: sshd's privilege
# separation directory /run/sshd is therefore made here, and the image holds no ssh host keys (the
# destination's host key comes from its Secret).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
ARG DEBIAN_PACKAGES="python3 python3-venv rsync openssh-server openssh-client bubblewrap busybox nftables iproute2 util-linux procps"
RUN set -eu; missing=; \
    for package in $DEBIAN_PACKAGES; do \
      dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed \
        || missing="$missing $package"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rm -f /etc/ssh/ssh_host_*; \
    mkdir -p -m 0755 /run/sshd /var/lib/volsync-mover

FROM base AS install
ARG VERSION=0.1.0
ARG WHEELHOUSE=
# the dependencies first (a layer that changes only with pyproject.toml), then our package: a
# wheel pip builds from the sources (offline: with the build backend from the wheelhouse)
COPY pyproject.toml /src/pyproject.toml
COPY ${WHEELHOUSE:-pyproject.toml} /wheels/
RUN set -eu; python3 -m venv /opt/volsync-addon; \
    if [ -n "$WHEELHOUSE" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    dependencies=$(python3 -c 'import tomllib; \
      print(" ".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))'); \
    /opt/volsync-addon/bin/pip install --no-cache-dir --disable-pip-version-check $dependencies
COPY . /src
RUN set -eu; \
    if [ -n "$WHEELHOUSE" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi; \
    /opt/volsync-addon/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src; \
    installed=$(/opt/volsync-addon/bin/python -c \
      'from importlib.metadata import version; print(version("volsync-addon"))'); \
    if [ "$installed" != "$VERSION" ]; then \
      echo "installed volsync-addon $installed but VERSION is $VERSION" >&2; exit 1; \
    fi; \
    /opt/volsync-addon/bin/python -m pip uninstall -y -q pip setuptools

FROM base
RUN groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin nonroot
ENV PATH=/opt/volsync-addon/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ARG VERSION=0.1.0
ARG SOURCE_URL=https://github.com/volsync-addon/volsync-addon
LABEL org.opencontainers.image.title="volsync-addon" \
      org.opencontainers.image.description="Hub, agent and rsync-over-ssh mover of the volsync-addon multicluster persistent-volume replication addon" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=install /opt/volsync-addon /opt/volsync-addon
USER 65532:65532
WORKDIR /
CMD ["volsync-agent", "--help"]
