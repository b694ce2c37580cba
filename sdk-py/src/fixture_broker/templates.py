"""templates.py: client-built PostgreSQL templates: hashing their inputs, applying SQL files.

A template is keyed by a hash of what builds it, so that it is built again exactly when that
changes. ``hash_files`` is the hash sdk-js's ``hashFiles`` computes (sha256, hex, of each
file's path relative to ``cwd`` with ``/``, its size and its bytes, in sorted path order), so
both clients name the same files by the same key. Patterns are Python's ``glob`` patterns
(``*``, ``?``, ``[a-z]``, and ``**`` for any number of folders); a leading ``!`` excludes.
"""

import glob
import hashlib
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence, Set, Union

from .errors import FixtureBrokerError

BuildFn = Callable[[str], Any]


def _invalid(message: str) -> FixtureBrokerError:
    return FixtureBrokerError.client("INVALID_ARGUMENT", message)


def match_files(patterns: Union[str, Iterable[str]], cwd: Union[str, Path, None] = None,
                allow_empty: bool = False) -> List[Path]:
    """The files the patterns match, relative to ``cwd``, sorted by their ``/`` path."""
    base = Path(cwd or os.getcwd()).resolve()
    pats = [patterns] if isinstance(patterns, str) else list(patterns)
    found: Set[Path] = set()
    excluded: Set[Path] = set()
    for pat in pats:
        target = excluded if pat.startswith("!") else found
        pat = pat[1:] if pat.startswith("!") else pat
        full = pat if os.path.isabs(pat) else str(base / pat)
        for name in glob.glob(full, recursive=True):
            p = Path(name)
            if p.is_file():
                target.add(p.resolve())
    files = sorted(found - excluded, key=lambda p: _rel(p, base))
    if not files and not allow_empty:
        raise _invalid(f"no file matches {pats} in {base}")
    return files


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


def hash_files(patterns: Union[str, Iterable[str]], cwd: Union[str, Path, None] = None,
               allow_empty: bool = False) -> str:
    """sha256 (hex) of the matching files: each one's path relative to ``cwd``, its size and
    its bytes, in sorted path order (the same as sdk-js's ``hashFiles``)."""
    base = Path(cwd or os.getcwd()).resolve()
    h = hashlib.sha256()
    for p in match_files(patterns, base, allow_empty):
        body = p.read_bytes()
        h.update(f"{_rel(p, base)}\0{len(body)}\0".encode())
        h.update(body)
        h.update(b"\0")
    return h.hexdigest()


def apply_sql_files(url: str, files: Sequence[Path]) -> None:
    """Runs each SQL file against ``url``, in order, each in one transaction, with psycopg
    (3) or else psycopg2, whichever is installed."""
    try:
        import psycopg  # type: ignore[import-not-found, unused-ignore]

        with psycopg.connect(url) as conn:
            for f in files:
                with conn.transaction():
                    conn.execute(f.read_text())  # no parameters: several statements may run
        return
    except ImportError:
        pass
    try:
        import psycopg2  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        raise _invalid("a template built from SQL files needs psycopg or psycopg2 installed "
                       "(or give the template a build callable)") from None
    conn2 = psycopg2.connect(url)
    try:
        for f in files:
            with conn2, conn2.cursor() as cur:
                cur.execute(f.read_text())
    finally:
        conn2.close()


class Template:
    """A client-built PostgreSQL template, for the pytest plugin's ``fixture_broker_templates``.

    ``files``: glob patterns (relative to ``cwd``, default pytest's rootdir) whose contents
    key the template. ``build``: a callable taking the build database's URL; without it the
    ``.sql`` files among ``files`` are run in path order. The build callable's source file is
    part of the key too. ``wait_ms``: how long a worker waits for another one's build.
    """

    def __init__(self, files: Union[str, Sequence[str]], build: Optional[BuildFn] = None,
                 wait_ms: int = 300000, cwd: Union[str, Path, None] = None) -> None:
        if build is not None and not callable(build):
            raise _invalid(f"Template build must be a callable taking the build database's URL, not {build!r}")
        self.files = [files] if isinstance(files, str) else list(files)
        if not self.files:
            raise _invalid("a Template needs files to key it")
        self.build = build
        self.wait_ms = wait_ms
        self.cwd = cwd

    def key(self, cwd: Union[str, Path]) -> str:
        """The hash the template is built and leased under."""
        base = Path(self.cwd or cwd)
        patterns = list(self.files)
        if self.build is not None:
            try:
                source = inspect.getsourcefile(self.build)
            except TypeError:
                source = None
            if source:
                patterns.append(os.path.abspath(source))
        return hash_files(patterns, base)

    def run(self, url: str, cwd: Union[str, Path]) -> None:
        """Builds the template's contents in the build database at ``url``."""
        if self.build is not None:
            self.build(url)
            return
        sql = [p for p in match_files(self.files, Path(self.cwd or cwd)) if p.suffix == ".sql"]
        if not sql:
            raise _invalid(f"template files {self.files} hold no .sql file and the template has no build callable")
        apply_sql_files(url, sql)

    def __repr__(self) -> str:
        return f"Template(files={self.files!r}, build={self.build!r})"
