"""Run directories: one process at a time, one configuration per directory, overwrite only on request.

* :func:`lock_run_dir` takes ``OUT/.lock`` with ``fcntl.flock`` for the rest of the process's life (the
  kernel drops it when the process ends, even when killed); a second process gets a
  :class:`~vjepa2_ac.errors.RunLockedError` naming the holder's pid.
* :func:`check_settings` compares the settings a run was started with (``OUT/<name>``, JSON) with the
  current ones and names every differing key; :func:`write_settings` stores them.
* :func:`remove_outputs` deletes a run's outputs, only while this process holds the lock.
* :func:`data_identity` fingerprints dataset paths (every file's relative path, size and mtime), for
  caches and resume checks that must notice replaced data.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vjepa2_ac.errors import RunDirError, RunLockedError

__all__ = [
    "LOCK_NAME",
    "lock_run_dir",
    "release_run_dir",
    "holds_lock",
    "check_settings",
    "write_settings",
    "remove_outputs",
    "data_identity",
    "flatten",
]

LOCK_NAME = ".lock"

# Locked run directory (resolved) -> open lock file; kept open for the process's lifetime.
_HELD: dict[Path, Any] = {}


@atexit.register
def _release_all() -> None:
    for out in list(_HELD):
        release_run_dir(out)


def lock_run_dir(out: str | os.PathLike, what: str = "--out") -> Path:
    """Create ``out`` if needed and lock it for this process (re-entrant within one process)."""
    out = Path(out)
    key = out.resolve()
    if key in _HELD:
        return out
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise RunLockedError(
            f"{what} {out} is in use by process {holder} (lock file {out / LOCK_NAME}); "
            "wait for it to finish or use another folder"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[key] = f
    return out


def release_run_dir(out: str | os.PathLike) -> None:
    """Give the lock back before the process ends (library callers running several runs)."""
    f = _HELD.pop(Path(out).resolve(), None)
    if f is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def holds_lock(out: str | os.PathLike) -> bool:
    """Whether this process holds ``out``'s lock."""
    return Path(out).resolve() in _HELD


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b": value}`` (lists and other values are leaves)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _canonical(value: Any) -> Any:
    # JSON round trip: tuples and lists compare equal, as they do once stored.
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _show(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_settings(
    out: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    name: str,
    free: Iterable[str] = (),
    what: str = "--out",
    hint: str = "use another folder, or --overwrite to replace it",
) -> bool:
    """Raise :class:`RunDirError` if ``out/name`` holds other settings (``free`` dotted keys may differ).

    Returns whether stored settings were found. The message lists each differing key as ``old -> new``.
    """
    path = Path(out) / name
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path}: unreadable run settings ({e}); {hint}") from None
    if not isinstance(stored, dict):
        raise RunDirError(f"{path}: expected a JSON object of run settings; {hint}")
    old, new = flatten(stored), flatten(_canonical(dict(settings)))
    skip = set(free)
    diff = [
        f"{k}: {_show(old.get(k, '<unset>'))} -> {_show(new.get(k, '<unset>'))}"
        for k in sorted(set(old) | set(new))
        if k not in skip and not any(k.startswith(f"{s}.") for s in skip) and old.get(k) != new.get(k)
    ]
    if diff:
        raise RunDirError(f"{what} {Path(out)} holds a run with other settings ({'; '.join(diff)}); {hint}")
    return True


def write_settings(out: str | os.PathLike, settings: Mapping[str, Any], *, name: str) -> None:
    """Store ``settings`` as ``out/name`` (JSON, atomically)."""
    from vjepa2_ac.atomic import atomic_write_text

    atomic_write_text(
        Path(out) / name, json.dumps(_canonical(dict(settings)), indent=1, sort_keys=True) + "\n"
    )


def remove_outputs(out: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Delete the named files/folders of ``out`` (``--overwrite``); only under this process's lock."""
    out = Path(out)
    if not holds_lock(out):
        raise RuntimeError(f"remove_outputs: {out} is not locked by this process; call lock_run_dir first")
    removed = []
    for n in names:
        p = out / n
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            removed.append(n)
        elif p.exists() or p.is_symlink():
            p.unlink()
            removed.append(n)
    return removed


def data_identity(paths: Iterable[str | os.PathLike]) -> dict[str, Any]:
    """Fingerprint of datasets: resolved paths, file count, bytes, and a sha256 over every file's
    relative path, size and modification time (not the contents: stat only, fast on large trees)."""
    h = hashlib.sha256()
    files = total = 0
    resolved = []
    for p in paths:
        root = Path(p).resolve()
        resolved.append(str(root))
        h.update(f"\0root\0{root}\0".encode())
        if not root.exists():
            h.update(b"missing")
            continue
        entries = [root] if root.is_file() else sorted(q for q in root.rglob("*") if q.is_file())
        for q in entries:
            st = q.stat()
            rel = q.name if q == root else str(q.relative_to(root))
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            files += 1
            total += st.st_size
    return {"paths": resolved, "files": files, "bytes": total, "sha256": h.hexdigest()}
