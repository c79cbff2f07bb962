"""A throwaway PostgreSQL server for tests: ``initdb`` in a temporary folder, ``pg_ctl start`` on 127.0.0.1 on a
free port (its Unix socket in that folder too), stopped and removed at the end. As root the server runs as the
``postgres`` OS user (PostgreSQL refuses to run as root). The binaries are Debian's
(/usr/lib/postgresql/*/bin) or the ones on PATH; ``$SENTENCEKIT_PG_BINDIR`` picks others.

    with postgres_server() as dsn:
        psycopg.connect(dsn)
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or the user to run them as) are missing here."""


def bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; :class:`ServerUnavailable` when there is none."""
    given = os.environ.get("SENTENCEKIT_PG_BINDIR")
    if given:
        candidates = [Path(given)]
    else:
        candidates = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                              key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                                              else 0, reverse=True)]
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise ServerUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql-15 "
                            "(sudo bash scripts/install_pgvector.sh), or set SENTENCEKIT_PG_BINDIR")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield the connection URL of its ``postgres`` database (user ``postgres``, trust
    authentication, 127.0.0.1 only); stop it and remove its folder on exit."""
    bins = bindir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable("running as root and there is no `postgres` OS user to run the server as "
                                    "(PostgreSQL refuses root); install postgresql-15, which creates it") from None
        runuser = shutil.which("runuser")
        as_user = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]
    root = Path(tempfile.mkdtemp(prefix="sentencekit-pg-"))
    if as_user:
        os.chown(root, user.pw_uid, user.pw_gid)

    def run(*command: str) -> subprocess.CompletedProcess:
        if as_user and as_user[0] == "su":
            import shlex

            command = (" ".join(shlex.quote(c) for c in command),)
        return subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)

    data, log = root / "data", root / "server.log"
    started = False
    try:
        done = run(str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        for _attempt in range(3):  # another process may take the free port first
            port = free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
            done = run(str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
                       "start")
            if done.returncode == 0:
                started = True
                break
        if not started:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()}\n{text[-2000:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            run(str(bins / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
