"""Which root filesystem a Pod's `image` runs on here: the node pulls nothing, it maps references.

Kinds (what a reference maps to):
- `host`: the host's root read-only, with this installation's virtualenv `bin/` first on PATH, so the
  project's console scripts (`volsync-agent`, ...) run. Default for the project's own image: any
  repository named `volsync-addon` or `volsync-addon-agent` (the hub renders, and the agent's mover
  Jobs run, `quay.io/volsync-addon/volsync-addon:<version>` by default: `api.images`). The host's
  secrets stay hidden: password hashes, ssh host keys and sudo rules read as empty, `/var/lib`,
  `/var/log`, ... are empty tmpfs.
- `python`: the same host root; the virtualenv's `python`/`python3` come first on PATH, so
  `import kubernetes` works. Default for `python` and `docker.io/library/python`, any tag.
- `busybox`: a root built once under `<state>/images/busybox` from Debian's busybox (its applets as
  symlinks, the shared libraries it needs, `setpriv`, a minimal `/etc`). Default for `busybox`,
  `docker.io/library/busybox`, `registry.k8s.io/busybox`, `gcr.io/google-containers/busybox`,
  `quay.io/prometheus/busybox`, any tag or digest.

A pattern is an `fnmatch` glob over the repository (the reference without tag or digest;
`docker.io/x` also matches as `docker.io/library/x` and `x`). The map is configurable: a JSON or
YAML file holding `{pattern: kind}`, whose rules are tried before the defaults. An image no rule maps
raises `ImageError("ErrImagePull", "... <image> ...")`.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from osutil.files import open_private, private_dir

KINDS = ("host", "python", "busybox")
DEFAULT_RULES: dict[str, str] = {
    "volsync-addon": "host",
    "*/volsync-addon": "host",
    "volsync-addon-agent": "host",
    "*/volsync-addon-agent": "host",
    "python": "python",
    "docker.io/library/python": "python",
    "busybox": "busybox",
    "docker.io/library/busybox": "busybox",
    "registry.k8s.io/busybox": "busybox",
    "k8s.gcr.io/busybox": "busybox",
    "gcr.io/google-containers/busybox": "busybox",
    "quay.io/prometheus/busybox": "busybox",
}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_SETPRIV = "/.node/setpriv"
# host secrets a host-root image never sees: directories become empty private tmpfs (scratch), files
# read as empty (`/dev/null` bound over them); `keep` still binds the Python installation back
HOST_SECRET_DIRS = ("/etc/sudoers.d", "/etc/ssl/private", "/var/lib", "/var/log", "/var/backups", "/var/spool",
                    "/var/mail", "/srv")
HOST_SECRET_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
                     "/etc/security/opasswd")
HOST_SECRET_GLOBS = ("/etc/ssh/ssh_host_*_key",)
PROJECT_IMAGE_DIRS = ("/run/sshd",)
"""What the project's `Dockerfile` makes below a scratch path: sshd's privilege separation directory
(a read-only root could not gain it at run time)."""
BUSYBOX_ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "resolv.conf": "",
    "nsswitch.conf": "hosts: files dns\n",
}


class ImageError(Exception):
    """The image cannot run here; `reason` is the container's waiting reason (`ErrImagePull`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class RootFs:
    """What a container of one image kind runs on.

    `root` (host path) becomes `/`, read-only. `scratch` are the sandbox paths that get a private
    tmpfs (so nothing written there reaches the host); `keep` host paths are bound back read-only
    over them (the Python installation when it lives under `/root` or `/tmp`), and again over any Pod
    volume that covers them (`sandbox.pod_mounts`). `setpriv` and `env` are paths
    inside the root. `masked` files read as empty (the host's secrets, for host-root images)."""

    kind: str
    root: Path
    path: str
    scratch: tuple[str, ...]
    keep: tuple[str, ...]
    setpriv: str
    env: str
    masked: tuple[str, ...] = ()
    replaced: tuple[tuple[str, str], ...] = ()  # (host file, path inside): bound read-only over the path
    image_dirs: tuple[str, ...] = ()  # empty 0755 directories the image has below a scratch path


class ImageMap:
    """Image references -> `RootFs`; builds the busybox root once under `images_dir`."""

    def __init__(self, rules: Mapping[str, str] | None = None, *, venv: Path | None = None) -> None:
        merged = dict(rules or {})
        for pattern, kind in merged.items():
            if kind not in KINDS:
                raise ValueError(f"image rule {pattern!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        merged.update({p: k for p, k in DEFAULT_RULES.items() if p not in merged})
        self.rules = merged
        self.venv = venv or Path(sys.prefix)

    @classmethod
    def from_file(cls, path: Path, *, venv: Path | None = None) -> ImageMap:
        """Rules from a JSON or YAML file `{pattern: kind}`, tried before the defaults."""
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ValueError(f"{path}: expected a mapping of image pattern to kind")
        return cls(data, venv=venv)

    def kind_of(self, image: str) -> str:
        """The kind `image` maps to, or `ImageError(ErrImagePull)`."""
        names = repository_names(image)
        for pattern, kind in self.rules.items():
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return kind
        raise ImageError("ErrImagePull", f'Failed to pull image "{image}": no runtime on this node maps this '
                                         f"image (known: {', '.join(sorted(self.rules))})")

    def resolve(self, image: str, images_dir: Path) -> RootFs:
        """The root filesystem for `image` (building the busybox root on first use)."""
        kind = self.kind_of(image)
        if kind == "busybox":
            root = ensure_busybox_root(images_dir / "busybox")
            return RootFs(kind, root, "/usr/sbin:/usr/bin:/sbin:/bin", ("/tmp", "/run", "/var/tmp", "/root", "/home"),
                          (), BUSYBOX_SETPRIV, "/usr/bin/env")
        bin_dir = str(self.venv / "bin")
        scratch = ("/tmp", "/run", "/var/tmp", "/root", "/home",
                   *(d for d in HOST_SECRET_DIRS if os.path.isdir(d) and not os.path.islink(d)))
        keep = tuple(sorted({str(p) for p in (Path(sys.base_prefix), self.venv, project_root())
                             if any(under(str(p), s) for s in scratch)}))
        shadow = image_shadow(images_dir / "host")
        masked = tuple(f for f in host_secret_files() if f != "/etc/shadow")
        replaced = ((str(shadow), "/etc/shadow"),) if os.path.isfile("/etc/shadow") else ()
        return RootFs(kind, Path("/"), f"{bin_dir}:{SYSTEM_PATH}", scratch, keep, "/usr/bin/setpriv", "/usr/bin/env",
                      masked, replaced, PROJECT_IMAGE_DIRS if kind == "host" else ())


def image_shadow(directory: Path) -> Path:
    """An `/etc/shadow` as a Debian image has one, for host-root images: every account of the host's
    `/etc/passwd` with the password `*` (no password login, but not a locked account: sshd with
    `UsePAM no` refuses a locked or missing entry even for key login). No hash of the host's leaves it."""
    lines = []
    for entry in Path("/etc/passwd").read_text(errors="replace").splitlines():
        name = entry.split(":", 1)[0]
        if name and not name.startswith("#"):
            lines.append(f"{name}:*:19000:0:99999:7:::\n")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "shadow"
    text = "".join(lines)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o640)
        tmp.replace(path)
    return path


def host_secret_files() -> tuple[str, ...]:
    """The host's secret files that exist (regular files, not links: bwrap binds over real paths)."""
    found = [*HOST_SECRET_FILES, *(str(p) for g in HOST_SECRET_GLOBS for p in Path("/").glob(g.lstrip("/")))]
    return tuple(sorted(p for p in found if os.path.isfile(p) and not os.path.islink(p)))


def repository_names(image: str) -> list[str]:
    """The names a reference is matched as: its repository without tag/digest, plus the Docker Hub
    spellings of the same repository (`busybox` = `docker.io/library/busybox`)."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo[: len(repo) - len(last[-1])] + last[-1].split(":", 1)[0]
    names = [repo]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if repo.startswith(prefix):
            short = repo[len(prefix):]
            names += [short, "docker.io/library/" + short] if "/" not in short else [short]
            break
    else:
        if "/" not in repo:
            names.append("docker.io/library/" + repo)
    return names


def project_root() -> Path:
    """The directory holding our packages (the checkout of an editable install, or site-packages)."""
    return Path(__file__).resolve().parents[2]


def under(path: str, parent: str) -> bool:
    """`path` is `parent` or lies below it (plain string paths, normalised by the caller)."""
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def ensure_busybox_root(root: Path) -> Path:
    """Build the busybox root at `root` once (crash-safe: built aside, renamed into place, under a lock)."""
    complete = root.with_name(root.name + ".complete")
    if complete.exists():
        return root
    private_dir(root.parent)
    with open_private(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists():
            return root
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            _populate_busybox(staging)
            if root.exists():
                shutil.rmtree(root)
            os.rename(staging, root)
            complete.write_text("")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _populate_busybox(root: Path) -> None:
    """Debian's busybox with all applets, the libraries it and setpriv link, a minimal /etc."""
    root.chmod(0o755)
    busybox = shutil.which("busybox") or "/usr/bin/busybox"
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "run", "var/tmp", "root", "home", "proc", "dev",
              "sys", ".node"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d).chmod(0o755)
    (root / "var/run").symlink_to("../run")
    shutil.copy2(busybox, root / "bin/busybox")
    listing = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    for applet in listing.split():
        link = root / applet
        if applet != "bin/busybox" and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    shutil.copy2(setpriv, root / BUSYBOX_SETPRIV.lstrip("/"))
    for lib in _shared_libraries([busybox, setpriv]):
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(os.path.realpath(lib), target)
    for name, content in BUSYBOX_ETC.items():
        (root / "etc" / name).write_text(content)
        (root / "etc" / name).chmod(0o644)


def _shared_libraries(binaries: list[str]) -> set[str]:
    """The absolute library paths `ldd` lists for `binaries` (the loader included)."""
    out = subprocess.run(["ldd", *binaries], capture_output=True, text=True, check=True).stdout
    libs: set[str] = set()
    for line in out.splitlines():
        for token in line.split():
            if token.startswith("/") and not token.endswith(":"):
                libs.add(token)
    return libs
