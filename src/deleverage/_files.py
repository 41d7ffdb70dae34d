"""Files named by users: read them safely, write them atomically.

Every path a user types (a scenario, an experiment, a journal, a population, an output file or
folder) goes through these helpers, so that each kind of bad path fails the same way: a
:class:`~deleverage.errors.ConfigError` naming the option, the path and the rule, before any
work starts. They never block (a FIFO is refused before it is opened), never read more than
:data:`MAX_TEXT_BYTES` of text, and never leave a half-written file or folder behind:

- :func:`read_text` reads a small UTF-8 text file (TOML, JSON);
- :func:`check_input_file` checks a binary input (Parquet, CSV) before a reader opens it;
- :func:`check_output_file` and :func:`atomic_write` write one output file under a temporary
  name and rename it into place;
- :func:`atomic_folder` builds an output folder as a temporary sibling and renames it into
  place at the end: after a failure or Ctrl-C the old folder (if any) is untouched and nothing
  else is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from deleverage.errors import ConfigError

__all__ = [
    "MAX_TEXT_BYTES",
    "atomic_folder",
    "atomic_write",
    "check_input_file",
    "check_output_file",
    "check_output_folder",
    "read_text",
]

#: Largest configuration file read (scenarios and experiments are a few KB).
MAX_TEXT_BYTES = 4 * 1024 * 1024


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def check_input_file(path: str | Path, *, field: str, what: str = "file") -> Path:
    """Return ``path`` if it names an existing, readable regular file.

    Raises
    ------
    ConfigError
        Naming ``field``, the path and the rule: missing, a folder, a FIFO / device / socket,
        or unreadable.
    """
    file = Path(path)
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(field, str(file), f"must name an existing {what}") from None
    except OSError as exc:
        raise ConfigError(
            field, str(file), f"must name a readable {what} ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(mode):
        raise ConfigError(field, str(file), f"must be a regular {what}, not {_kind(mode)}")
    if not os.access(file, os.R_OK):
        raise ConfigError(field, str(file), f"must be a readable {what} (permission denied)")
    return file


def read_text(path: str | Path, *, field: str, what: str = "file") -> str:
    """Read a UTF-8 text file of at most :data:`MAX_TEXT_BYTES`.

    Raises
    ------
    ConfigError
        Naming ``field``, the path and the rule (see :func:`check_input_file`; also too large,
        binary, or not UTF-8 with the offset of the first bad byte).
    """
    file = check_input_file(path, field=field, what=what)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(field, str(file), f"must be a readable {what} ({exc.strerror})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise ConfigError(
            field, str(file), f"must be a text {what} of at most {MAX_TEXT_BYTES:,} bytes"
        )
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise ConfigError(
            field, str(file), f"must be a text {what}, not binary (NUL byte at offset {offset})"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            field,
            str(file),
            f"must be UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} is not)",
        ) from None


def check_output_file(path: str | Path, *, field: str) -> Path:
    """Return ``path`` if a file can be written there: its folder exists and is writable, and
    the path is not a folder or a special file (an existing regular file is replaced).

    Raises
    ------
    ConfigError
        Naming ``field``, the path and the rule.
    """
    file = Path(path)
    if str(path).endswith(("/", os.sep)) or file.name in ("", ".", ".."):
        raise ConfigError(field, str(path), "must name a file, not a folder")
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        mode = file.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(field, str(file), f"must name a regular file, not {_kind(mode)}")
    parent = file.parent
    if not parent.is_dir():
        raise ConfigError(field, str(file), f"must be in an existing folder ({parent} is not one)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(field, str(file), f"must be in a writable folder ({parent} is not)")
    return file


def atomic_write(path: str | Path, write: Callable[[Path], object], *, field: str) -> Path:
    """Check ``path`` (:func:`check_output_file`), call ``write(temporary_path)`` and rename
    the result into place; on any failure (or Ctrl-C) remove the temporary file."""
    file = check_output_file(path, field=field)
    handle, name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    os.close(handle)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())
    try:
        write(tmp)
        os.replace(tmp, file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return file


def _missing_parents(folder: Path) -> list[Path]:
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def check_output_folder(folder: Path, *, field: str) -> None:
    """Raise :class:`ConfigError` unless ``folder`` is, or can be created as, a folder: no part
    of it is a file, and its nearest existing parent is writable."""
    for parent in [folder, *folder.parents]:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(
                field, str(folder), f"must be a usable folder ({exc.strerror})"
            ) from None
        if not stat.S_ISDIR(mode):
            where = "" if parent == folder else f" ({parent} is {_kind(mode)}, not a folder)"
            what = "a file" if stat.S_ISREG(mode) else _kind(mode)
            rule = f"must be a folder, not {what}" if parent == folder else "must be a folder path"
            raise ConfigError(field, str(folder), rule + where)
        if parent != folder and not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(
                field, str(folder), f"must be in a writable folder ({parent} is not writable)"
            )
        break


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _swap_in(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
    os.replace(final, old / final.name)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old / final.name, final)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(
    folder: str | Path, *, field: str, replaceable: Collection[str] = ()
) -> Iterator[Path]:
    """Yield a temporary sibling of ``folder`` to write into; rename it to ``folder`` when the
    block ends without error, else remove it.

    An existing ``folder`` is replaced only if it is empty or holds nothing but the names in
    ``replaceable`` (an earlier run's outputs): never a folder with other files in it. The
    parents of ``folder`` are created if missing and removed again on failure, so a failed or
    interrupted run leaves the file system as it found it.

    Raises
    ------
    ConfigError
        If ``folder`` (or a parent) is a file, its parent is not writable, or it holds files
        that are not in ``replaceable``.
    """
    final = Path(folder)
    if str(folder).strip() == "" or final.name in ("", ".", ".."):
        raise ConfigError(field, str(folder), "must name a folder of its own (not '', '.' or '..')")
    check_output_folder(final, field=field)
    if final.is_dir():
        others = sorted(p.name for p in final.iterdir() if p.name not in replaceable)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise ConfigError(
                field,
                str(final),
                f"must be a new or empty folder, or an earlier output of this command (it holds "
                f"{shown})",
            )
    created = _missing_parents(final.parent)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as exc:
        for parent in created:
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise ConfigError(
            field, str(final), f"must be a folder we can create ({exc.strerror})"
        ) from None
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
