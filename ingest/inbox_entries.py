"""The inbox's entries as the file system has them: names that may not be UTF-8, links,
folders, FIFOs. Everything here works from `lstat` and renames; nothing follows a link, and a
file is opened only once it is known to be regular (without following links, without blocking).

- `scan_inbox` lists the ready entries of every SMO folder and classifies each: a regular file
  with a clean name is a delivery; a name that is not UTF-8 or holds control characters
  (`file.name_unsafe`) and anything that is not a regular file (`file.not_regular`) must be
  quarantined unopened. Top-level entries that are not real, cleanly named folders are not SMO
  folders and are reported as skipped.
- `escaped_name` is the one printable form of a name that ledgers, reports, logs and stored
  file names use (`A\\xf1o.csv` for the cp1252 bytes of `Año.csv`).
- `move_entry` renames an entry unopened; `open_regular` opens a regular file safely.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ingest.gate_result import Problem

NOT_READY_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", "~")
#: Stored names stay below NAME_MAX (255 bytes) with the id prefix and `.report.json` added.
MAX_STORED_NAME_BYTES = 200

ENTRY_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFLNK: "symbolic link",
    stat.S_IFDIR: "folder",
    stat.S_IFIFO: "named pipe (FIFO)",
    stat.S_IFSOCK: "socket",
    stat.S_IFBLK: "block device",
    stat.S_IFCHR: "character device",
}
#: Text-direction controls that make a name read differently from its bytes.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


# -- names ------------------------------------------------------------------------------------


def _unsafe_char(ch: str) -> bool:
    """Never kept in a name as it is: controls (C0, DEL, C1), line and paragraph separators,
    undecodable bytes (surrogate escapes) and text-direction controls."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs") or ch in BIDI_CONTROLS


def escaped_name(name: str | bytes) -> str:
    """A printable, valid UTF-8 form of a file name, one to one with its bytes.

    Bytes that are not UTF-8 become `\\xNN`, control and direction characters `\\xNN` /
    `\\uNNNN`, and a backslash `\\\\`; everything else stays as written (`Año.csv`).
    """
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif _unsafe_char(ch):
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def name_problem(name: str | bytes) -> str | None:
    """Why a name cannot be used as it is (not UTF-8, control characters), or None."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"is not valid UTF-8 (byte {exc.start} is 0x{raw[exc.start]:02x}); the sending "
            "system wrote it in another encoding, e.g. cp1252"
        )
    bad = list(dict.fromkeys(ch for ch in text if _unsafe_char(ch)))
    if bad:
        shown = ", ".join(escaped_name(ch) for ch in bad)
        return f"contains control or text-direction characters ({shown})"
    return None


def fit_name(name: str) -> str:
    """Shorten a (safe) name that would not fit NAME_MAX once stored: head, digest, extension."""
    data = name.encode()
    if len(data) <= MAX_STORED_NAME_BYTES:
        return name
    _, dot, ext = name.rpartition(".")
    ext = f".{ext}" if dot and len(ext.encode()) <= 16 else ""
    digest = hashlib.sha256(data).hexdigest()[:12]
    budget = MAX_STORED_NAME_BYTES - len(ext.encode()) - len(digest) - 1
    head = data[:budget].decode("utf-8", "ignore")
    return f"{head}~{digest}{ext}"


# -- the scan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxEntry:
    """One ready entry of an SMO folder, as `lstat` saw it (nothing was opened)."""

    smo_id: str
    path: Path  # as the OS names it (not-UTF-8 bytes as surrogate escapes)
    name: str  # the escaped name: what ledgers, reports and logs show
    raw_name: bytes
    kind: str  # ENTRY_KINDS value
    size: int
    mtime: float
    problems: tuple[Problem, ...] = ()  # why it is quarantined unopened; empty for a delivery

    @property
    def deliverable(self) -> bool:
        return not self.problems

    @property
    def fingerprint(self) -> str:
        return f"{self.smo_id}/{self.name}:{self.kind}:{self.size}:{int(self.mtime)}"


@dataclass
class InboxScan:
    #: Ready entries per SMO folder, in name order (deliveries and entries to quarantine).
    entries: dict[str, list[InboxEntry]] = field(default_factory=dict)
    #: Top-level entries that are not usable SMO folders, left where they are: (where, why).
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _kind(mode: int) -> str:
    return ENTRY_KINDS.get(stat.S_IFMT(mode), "special file")


def _is_not_ready(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(NOT_READY_SUFFIXES)


def classify(path: Path, smo_id: str, st: os.stat_result) -> InboxEntry:
    """An SMO-folder entry from its `lstat`, with the problems that keep it from the gate."""
    raw = os.fsencode(path.name)
    name = escaped_name(raw)
    kind = _kind(st.st_mode)
    problems = []
    why = name_problem(raw)
    if why:
        problems.append(
            Problem(
                "file.name_unsafe",
                f"The name '{name}' {why}. The entry was moved to quarantine unopened under "
                "that escaped name; rename it (UTF-8, printable characters only) and deliver it "
                "again.",
            )
        )
    if kind != "file":
        problems.append(Problem("file.not_regular", _not_regular_message(path, name, kind, smo_id)))
    return InboxEntry(
        smo_id=smo_id,
        path=path,
        name=name,
        raw_name=raw,
        kind=kind,
        size=st.st_size if kind == "file" else 0,
        mtime=st.st_mtime,
        problems=tuple(problems),
    )


def _not_regular_message(path: Path, name: str, kind: str, smo_id: str) -> str:
    if kind == "symbolic link":
        return (
            f"'{name}' is a symbolic link (to '{link_target(path)}'), not a file: links are "
            "never followed. The link itself was moved to quarantine; deliver the file itself."
        )
    if kind == "folder":
        return (
            f"'{name}' is a folder: deliveries are files placed directly in inbox/{smo_id}/ and "
            "folders are not searched. The folder was moved to quarantine as it is; deliver its "
            "files one by one."
        )
    return (
        f"'{name}' is a {kind}, not a file. It was moved to quarantine without being opened; "
        "deliver a regular file."
    )


def link_target(path: Path) -> str:
    try:
        return escaped_name(os.readlink(path))
    except OSError:
        return "?"


def _scandir(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: os.fsencode(e.name))


def scan_inbox(inbox: Path, settle_seconds: float, now: float | None = None) -> InboxScan:
    """Every ready entry per SMO folder, classified; never follows a link or opens an entry."""
    now = time.time() if now is None else now
    scan = InboxScan()
    try:
        top = _scandir(inbox)  # the inbox itself may be a link: it is configuration
    except (FileNotFoundError, NotADirectoryError):
        return scan
    for smo_entry in top:
        if smo_entry.name.startswith("."):
            continue
        where = escaped_name(smo_entry.name)
        why = _smo_folder_problem(smo_entry)
        if why:
            scan.skipped.append((where, why))
            continue
        try:
            children = _scandir(Path(smo_entry.path))
        except OSError as exc:
            scan.skipped.append((where, f"the SMO folder cannot be listed ({exc.strerror})"))
            continue
        ready = []
        for child in children:
            if _is_not_ready(child.name):
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone meanwhile
            except OSError as exc:
                where_child = f"{where}/{escaped_name(child.name)}"
                scan.skipped.append((where_child, f"cannot be examined ({exc.strerror})"))
                continue
            if now - st.st_mtime < settle_seconds:
                continue
            ready.append(classify(Path(child.path), smo_entry.name, st))
        if ready:
            scan.entries[smo_entry.name] = ready
    return scan


def _smo_folder_problem(entry: os.DirEntry) -> str | None:
    why = name_problem(entry.name)
    if why:
        return f"the folder name {why}: it cannot be an SMO id; left where it is"
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return f"cannot be examined ({exc.strerror}); left where it is"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link, not an SMO folder: links are never followed; left where it is"
    if not stat.S_ISDIR(st.st_mode):
        return (
            f"a {_kind(st.st_mode)} at the top of the inbox, not an SMO folder: deliveries go in "
            "inbox/<smo_id>/; left where it is"
        )
    return None


def ready_files(
    inbox: Path, settle_seconds: float, now: float | None = None
) -> dict[str, list[Path]]:
    """Ready entries per SMO folder, in name order: deliveries and entries to quarantine."""
    scan = scan_inbox(inbox, settle_seconds, now)
    return {smo: [e.path for e in entries] for smo, entries in scan.entries.items()}


# -- moving and opening -------------------------------------------------------------------------


def move_entry(path: Path, target: Path) -> Path:
    """Rename an entry (never following or opening it); across file systems, copy a regular
    file's bytes, recreate a link or a FIFO; a folder or device cannot be moved that way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "already exists", str(target))
    try:
        os.rename(path, target)
        return target
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        fd = open_regular(path)
        try:
            with os.fdopen(fd, "rb", closefd=False) as src, target.open("xb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        finally:
            os.close(fd)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(path), target)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(target, stat.S_IMODE(st.st_mode))
    else:
        raise OSError(
            errno.EXDEV, f"a {_kind(st.st_mode)} cannot be moved to another file system"
        ) from None
    os.unlink(path)
    return target


class NotRegularFile(Exception):
    """The path is not (or no longer) a regular file."""


def open_regular(path: Path) -> int:
    """A read descriptor on a regular file; never follows a link, never blocks on a FIFO."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise NotRegularFile(str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(str(path))
    return fd
