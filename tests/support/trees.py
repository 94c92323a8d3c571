"""Build directory trees that exercise everything a volume mover must preserve, and compare trees.

`make_sample_tree` writes files with known content, empty and nested directories, modes (0600,
0755, 0444, a setgid directory), foreign ownership (1234:5678, when root), symlinks (relative,
absolute, dangling), hardlinks across directories, a sparse file, POSIX ACLs (access and default),
names with spaces and non-ASCII characters, and a large random file.

`snapshot_tree` records every entry field by field; `assert_trees_equal` reports differences by path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

OWNER_UID = 1234
OWNER_GID = 5678
MiB = 1024 * 1024
SPARSE_SIZE = 64 * MiB
LARGE_SIZE = 20 * MiB

TEXT_FILES: dict[str, bytes] = {
    "hello.txt": b"hello world\n",
    "empty-file": b"",
    "nested/a/b/c/deep.txt": b"deep inside\n" * 100,
    "dir with space/file with space.txt": b"spaces in names\n",
    "日本語/データ.txt": "こんにちは\n".encode(),
    "café/é.txt": "crème brûlée\n".encode(),
    "modes/private-0600": b"secret\n",
    "modes/script-0755": b"#!/bin/sh\necho hi\n",
    "modes/readonly-0444": b"read only\n",
    "modes/setgid-dir/inside.txt": b"group inherits\n",
    "owned/by-1234.txt": b"owned by someone else\n",
    "hard/one": b"one inode, three names\n",
    "acl/file": b"has an access ACL\n",
}
MODES = {
    "modes/private-0600": 0o600,
    "modes/script-0755": 0o755,
    "modes/readonly-0444": 0o444,
    "modes/setgid-dir": 0o2775,
}
SYMLINKS = {
    "links/relative": "../hello.txt",
    "links/absolute": "/etc/hostname",
    "links/dangling": "does/not/exist",
    "links/to-dir": "../nested/a",
}
HARDLINKS = {"hard/two": "hard/one", "nested/hard-three": "hard/one"}
EMPTY_DIRS = ("empty-dir", "nested/empty/inner-empty")


def is_root() -> bool:
    return os.geteuid() == 0


def make_sample_tree(root: Path, *, large_size: int = LARGE_SIZE, sparse_size: int = SPARSE_SIZE) -> None:
    """Populate `root` (created if missing) with the sample tree described in the module docstring."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for rel, content in TEXT_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for rel in EMPTY_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel, mode in MODES.items():
        (root / rel).chmod(mode)
    for rel, target in SYMLINKS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    for rel, existing in HARDLINKS.items():
        os.link(root / existing, root / rel)
    with (root / "sparse.img").open("wb") as f:
        f.truncate(sparse_size)
        f.seek(sparse_size // 2)
        f.write(b"x")
    (root / "large.bin").write_bytes(os.urandom(large_size))
    (root / "acl/dir").mkdir()
    subprocess.run(["setfacl", "-m", f"u:{OWNER_UID}:rwx", str(root / "acl/file")], check=True)
    subprocess.run(["setfacl", "-d", "-m", f"g:{OWNER_GID}:rx", str(root / "acl/dir")], check=True)
    if is_root():
        for rel in ("owned", "owned/by-1234.txt", "links/dangling"):
            os.chown(root / rel, OWNER_UID, OWNER_GID, follow_symlinks=False)


def mutate_sample_tree(root: Path) -> None:
    """Change a sample tree the way a live volume changes between two iterations.

    Rewrites a file in place (same size), grows one, adds files and a directory, deletes a file, a
    symlink and a whole directory, changes a mode, an owner and a symlink target, and breaks a hardlink.
    """
    (root / "hello.txt").write_bytes(b"HELLO WORLD\n")
    with (root / "large.bin").open("r+b") as f:
        f.seek(LARGE_SIZE // 3)
        f.write(os.urandom(4096))
    with (root / "nested/a/b/c/deep.txt").open("ab") as f:
        f.write(b"appended\n")
    (root / "new-dir/sub").mkdir(parents=True)
    (root / "new-dir/sub/new-file.txt").write_bytes(b"brand new\n")
    (root / "日本語/新しい.txt").write_bytes("新しい\n".encode())
    (root / "modes/private-0600").unlink()
    (root / "links/absolute").unlink()
    shutil.rmtree(root / "nested/empty")
    (root / "modes/script-0755").chmod(0o700)
    (root / "links/relative").unlink()
    (root / "links/relative").symlink_to("../nested/a/b/c/deep.txt")
    (root / "hard/two").unlink()
    (root / "hard/two").write_bytes(b"no longer a hardlink\n")
    if is_root():
        os.chown(root / "hello.txt", OWNER_UID + 1, OWNER_GID + 1)


@dataclass(frozen=True)
class Entry:
    """One path of a tree. `content` is a sha256 for files and the target for symlinks.

    `link_group` names a hardlinked file's inode by the smallest path sharing it. `blocks` (the
    allocated size) is recorded for sparse-file checks but not compared.
    """

    type: str
    mode: int
    uid: int
    gid: int
    size: int
    content: str
    link_group: str | None
    acl: str
    mtime: int
    blocks: int = field(compare=False)


def snapshot_tree(root: Path) -> dict[str, Entry]:
    """Every path under `root` (and `root` itself as ".") mapped to its `Entry`."""
    stats: dict[str, os.stat_result] = {".": os.lstat(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            stats[str(path.relative_to(root))] = os.lstat(path)
    groups: dict[tuple[int, int], str] = {}
    for rel in sorted(stats):
        st = stats[rel]
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), rel)
    return {rel: _entry(root, rel, st, groups) for rel, st in sorted(stats.items())}


def _entry(root: Path, rel: str, st: os.stat_result, groups: Mapping[tuple[int, int], str]) -> Entry:
    path = root / rel
    if stat.S_ISLNK(st.st_mode):
        kind, content, size = "symlink", os.readlink(path), st.st_size
    elif stat.S_ISDIR(st.st_mode):
        kind, content, size = "dir", "", 0
    elif stat.S_ISREG(st.st_mode):
        kind, content, size = "file", _sha256(path), st.st_size
    else:
        kind, content, size = f"special:{stat.S_IFMT(st.st_mode):o}", "", 0
    return Entry(
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=size,
        content=content,
        link_group=groups.get((st.st_dev, st.st_ino)),
        acl="" if kind == "symlink" else _acl_text(path),
        mtime=int(st.st_mtime),
        blocks=st.st_blocks,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _acl_text(path: Path) -> str:
    """getfacl's numeric text when the path has an extended ACL, else ""."""
    has_acl = False
    for name in ("system.posix_acl_access", "system.posix_acl_default"):
        try:
            os.getxattr(path, name, follow_symlinks=False)
            has_acl = True
        except OSError:
            pass
    if not has_acl:
        return ""
    done = subprocess.run(["getfacl", "--omit-header", "--numeric", "--physical", "--absolute-names", "--", str(path)],
                          capture_output=True, check=True)
    return done.stdout.decode()


def assert_trees_equal(expected: Path | Mapping[str, Entry], actual: Path | Mapping[str, Entry]) -> None:
    """Fail with a per-path, per-field report unless both trees hold the same entries."""
    a = snapshot_tree(expected) if isinstance(expected, Path) else expected
    b = snapshot_tree(actual) if isinstance(actual, Path) else actual
    problems = [f"missing: {rel}" for rel in sorted(a.keys() - b.keys())]
    problems += [f"unexpected: {rel}" for rel in sorted(b.keys() - a.keys())]
    for rel in sorted(a.keys() & b.keys()):
        if a[rel] != b[rel]:
            for f in fields(Entry):
                left, right = getattr(a[rel], f.name), getattr(b[rel], f.name)
                if f.compare and left != right:
                    problems.append(f"{rel}: {f.name} {left!r} != {right!r}")
    if problems:
        shown = "\n  ".join(problems[:50])
        raise AssertionError(f"trees differ in {len(problems)} ways:\n  {shown}")
