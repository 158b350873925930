"""What build this is: version from the project metadata, commit from the build or from git."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from django.conf import settings

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def _project_version() -> str:
    try:
        return metadata.version("autoglue")
    except metadata.PackageNotFoundError:
        pyproject = Path(settings.BASE_DIR) / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH, only in a checkout
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


@functools.cache
def version_info() -> dict:
    """The contract's VersionResponse. Images set AUTOGLUE_COMMIT etc. at build time; a checkout
    asks git once per process."""
    revision = os.environ.get("AUTOGLUE_COMMIT") or _git("rev-parse", "HEAD")
    commit_time = os.environ.get("AUTOGLUE_COMMIT_TIME") or _git(
        "show", "-s", "--format=%cI", "HEAD"
    )
    modified_env = os.environ.get("AUTOGLUE_MODIFIED")
    if modified_env is not None:
        modified = modified_env.lower() in ("1", "true", "yes")
    else:
        modified = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "version": _project_version(),
        "commit": revision[:7],
        "built": os.environ.get("AUTOGLUE_BUILT", ""),
        "builtBy": os.environ.get("AUTOGLUE_BUILT_BY", "source"),
        # The contract names the runtime fields after Go; they describe the Python runtime here.
        "go": f"python{platform.python_version()}",
        "goOS": platform.system().lower(),
        "goArch": _ARCH.get(platform.machine(), platform.machine()),
        "vcs": "git" if revision else "",
        "revision": revision,
        "commitTime": commit_time,
        "modified": modified,
    }
