"""A model folder as a deterministic *stored* zip, produced as a stream of fixed-size parts.

The catalog wants a zip with the files at its root and no compression (the seed's `zip -0`). Here the same
folder always gives the same bytes: entries sorted by path, a fixed timestamp (1980-01-01) and fixed
permissions (0644), no data descriptors, zip64 records only where a size or offset needs them. The whole
layout (every offset, the total size) is known from the file sizes alone, before a byte is read.

A local header carries its file's CRC-32 before the data, and a stream cannot go back to patch it. So a
reader thread computes each file's CRC a little ahead of the writer (reading it once), and the writer reads
it again (from the page cache, usually) straight into the part buffer. A file written to between the scan
and the end of its second read (its size, mtime or ctime moved) is an error, never a silently corrupt zip.

Hidden files and folders (a name starting with ".": .git, .cache, .DS_Store) are left out, as the seed's
`zip ... *` leaves them out.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from domain.errors import UserError

LAYOUT_VERSION = "stored-zip-v1"
ZIP64_LIMIT = 0xFFFFFFFF  # a size or offset at or above this needs a zip64 field
DOS_TIME = 0  # 00:00:00
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
FILE_ATTRS = (stat.S_IFREG | 0o644) << 16
UTF8_FLAG = 0x0800

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
_EXTRA = struct.Struct("<HH")


@dataclass(frozen=True)
class FileEntry:
    arcname: str
    path: Path
    size: int
    mtime_ns: int
    ctime_ns: int = 0  # not in the digest: only to notice a file written while it is packaged

    def check_unchanged(self, st: os.stat_result) -> None:
        if (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (self.size, self.mtime_ns, self.ctime_ns):
            raise FileChanged(f"{self.path} changed while it was being packaged; package the folder again")


@dataclass(frozen=True)
class Manifest:
    """What a folder holds (names, sizes, modification times): enough to lay out its zip and to tell,
    without reading a byte, whether it changed since the last upload."""

    root: Path
    entries: tuple[FileEntry, ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256(f"{LAYOUT_VERSION}\n".encode())
        for e in self.entries:
            h.update(f"{e.arcname}\0{e.size}\0{e.mtime_ns}\n".encode())
        return h.hexdigest()

    @property
    def data_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def as_json(self) -> list[list[str | int]]:
        return [[e.arcname, e.size, e.mtime_ns] for e in self.entries]


def scan(folder: Path) -> Manifest:
    """Every regular file under `folder` (symlinks followed, hidden names skipped), sorted by zip name."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"source.localPath {str(folder)!r} is not a folder (expected a model folder to zip)")
    entries: list[FileEntry] = []
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink loop
            dirnames.clear()
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                info = path.stat()
            except OSError as exc:
                raise UserError(f"cannot read {path}: {exc.strerror} (a broken symlink?)") from exc
            if not stat.S_ISREG(info.st_mode):
                raise UserError(f"{path} is not a regular file; a model folder holds only files and folders")
            arcname = path.relative_to(root).as_posix()
            entries.append(FileEntry(arcname, path, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    if not entries:
        raise UserError(f"source.localPath {str(folder)!r} holds no files to package")
    entries.sort(key=lambda e: e.arcname.encode("utf-8"))
    return Manifest(root, tuple(entries))


# -------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Placed:
    entry: FileEntry
    name: bytes
    offset: int
    local_zip64: bool


@dataclass(frozen=True)
class ZipLayout:
    """Where every byte of the zip goes; `total_size` is exact before anything is read."""

    placed: tuple[_Placed, ...]
    cd_offset: int
    cd_size: int
    total_size: int
    zip64_limit: int

    @classmethod
    def of(cls, manifest: Manifest, *, zip64_limit: int = ZIP64_LIMIT) -> ZipLayout:
        placed = []
        offset = 0
        for e in manifest.entries:
            name = e.arcname.encode("utf-8")
            local64 = e.size >= zip64_limit
            placed.append(_Placed(e, name, offset, local64))
            offset += _LOCAL.size + len(name) + (_EXTRA.size + 16 if local64 else 0) + e.size
        cd_size = sum(_CENTRAL.size + len(p.name) + len(_central_extra(p, zip64_limit)) for p in placed)
        total = offset + cd_size + _EOCD.size
        if _needs_zip64_end(len(placed), offset, cd_size, zip64_limit):
            total += _EOCD64.size + _LOCATOR64.size
        return cls(tuple(placed), offset, cd_size, total, zip64_limit)

    def local_header(self, p: _Placed, crc: int) -> bytes:
        size = ZIP64_LIMIT if p.local_zip64 else p.entry.size
        extra = _EXTRA.pack(1, 16) + struct.pack("<QQ", p.entry.size, p.entry.size) if p.local_zip64 else b""
        version = 45 if p.local_zip64 else 20
        return _LOCAL.pack(0x04034B50, *_shared_fields(p, version, crc, size, extra)) + p.name + extra

    def central_directory(self, crcs: list[int]) -> bytes:
        out = bytearray()
        for p, crc in zip(self.placed, crcs, strict=True):
            extra = _central_extra(p, self.zip64_limit)
            big = p.entry.size >= self.zip64_limit
            size = ZIP64_LIMIT if big else p.entry.size
            offset = ZIP64_LIMIT if p.offset >= self.zip64_limit else p.offset
            version = 45 if extra else 20
            out += _CENTRAL.pack(
                0x02014B50,
                (3 << 8) | version,
                *_shared_fields(p, version, crc, size, extra),
                0,
                0,
                0,
                FILE_ATTRS,
                offset,
            )
            out += p.name + extra
        count = len(self.placed)
        if _needs_zip64_end(count, self.cd_offset, self.cd_size, self.zip64_limit):
            eocd64_offset = self.cd_offset + self.cd_size
            out += _EOCD64.pack(
                0x06064B50,
                _EOCD64.size - 12,
                (3 << 8) | 45,
                45,
                0,
                0,
                count,
                count,
                self.cd_size,
                self.cd_offset,
            )
            out += _LOCATOR64.pack(0x07064B50, 0, eocd64_offset, 1)
        out += _EOCD.pack(
            0x06054B50,
            0,
            0,
            min(count, 0xFFFF),
            min(count, 0xFFFF),
            min(self.cd_size, ZIP64_LIMIT) if self.cd_size < self.zip64_limit else ZIP64_LIMIT,
            self.cd_offset if self.cd_offset < self.zip64_limit else ZIP64_LIMIT,
            0,
        )
        return bytes(out)


def _shared_fields(p: _Placed, version: int, crc: int, size: int, extra: bytes) -> tuple[int, ...]:
    """The fields a local header and its central directory record both hold, in the same order: version
    needed, flags, method (stored), time, date, CRC-32, compressed and uncompressed size, name and extra
    field lengths."""
    return (version, _flags(p.name), 0, DOS_TIME, DOS_DATE, crc, size, size, len(p.name), len(extra))


def _flags(name: bytes) -> int:
    return UTF8_FLAG if not name.isascii() else 0


def _central_extra(p: _Placed, limit: int) -> bytes:
    fields = []
    if p.entry.size >= limit:
        fields += [p.entry.size, p.entry.size]
    if p.offset >= limit:
        fields.append(p.offset)
    if not fields:
        return b""
    return _EXTRA.pack(1, 8 * len(fields)) + struct.pack(f"<{len(fields)}Q", *fields)


def _needs_zip64_end(count: int, cd_offset: int, cd_size: int, limit: int) -> bool:
    return count >= 0xFFFF or cd_offset >= limit or cd_size >= limit


# ------------------------------------------------------------------------------------------ streaming


class FileChanged(UserError):
    pass


def _crc_of(entry: FileEntry, stop: threading.Event) -> int:
    crc = 0
    total = 0
    view = memoryview(bytearray(1 << 20))
    with entry.path.open("rb", buffering=0) as fh:
        entry.check_unchanged(os.fstat(fh.fileno()))
        while n := fh.readinto(view):
            if stop.is_set():
                return 0
            crc = zlib.crc32(view[:n], crc)
            total += n
        entry.check_unchanged(os.fstat(fh.fileno()))
    if total != entry.size:
        raise FileChanged(
            f"{entry.path} changed size while it was being packaged ({entry.size} -> {total} bytes)"
        )
    return crc


class _CrcAhead:
    """Computes the CRC-32 of the entries in order on a thread, at most `ahead_bytes` past the writer."""

    def __init__(self, entries: tuple[FileEntry, ...], ahead_bytes: int) -> None:
        self._entries = entries
        self._ahead = ahead_bytes
        self._crcs: dict[int, int | BaseException] = {}
        self._cond = threading.Condition()
        self._writer_at = 0  # index of the entry the writer needs next
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zip-crc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i, e in enumerate(self._entries):
            with self._cond:
                while (
                    not self._stop.is_set()
                    and i > self._writer_at
                    and self._bytes_between(self._writer_at, i) > self._ahead
                ):
                    self._cond.wait(0.5)
            if self._stop.is_set():
                return
            try:
                result: int | BaseException = _crc_of(e, self._stop)
            except BaseException as exc:
                result = exc
            with self._cond:
                self._crcs[i] = result
                self._cond.notify_all()
            if isinstance(result, BaseException):
                return

    def _bytes_between(self, start: int, end: int) -> int:
        return sum(e.size for e in self._entries[start:end])

    def get(self, i: int) -> int:
        with self._cond:
            self._writer_at = i
            self._cond.notify_all()
            while i not in self._crcs:
                self._cond.wait(0.5)
            result = self._crcs.pop(i)
        if isinstance(result, BaseException):
            if isinstance(result, OSError):
                raise UserError(f"cannot read {self._entries[i].path}: {result.strerror}") from result
            raise result
        return result

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)


class PartWriter:
    """Fills one part buffer at a time; calls `emit(part_number, view)` for every full part and the last.

    `view` is a memoryview of the part's buffer. Without `take_buffer` the same buffer is refilled once
    `emit` returns (for consumers that are done with the bytes by then, such as a file); with it, every
    part gets a buffer of its own from `take_buffer` and the consumer hands buffers back when done with
    them (a pool: big buffers are reused instead of being allocated and page-faulted for every part).
    """

    def __init__(
        self,
        part_size: int,
        emit: Callable[[int, memoryview], None],
        take_buffer: Callable[[], bytearray] | None = None,
    ) -> None:
        self._take = take_buffer or (lambda: bytearray(part_size))
        self._reuse = take_buffer is None
        self._buf = self._take()
        self._view = memoryview(self._buf)
        self._size = part_size
        self._fill = 0
        self._number = 1
        self._emit = emit

    def _flush(self) -> None:
        self._emit(self._number, self._view[: self._fill])
        self._number += 1
        self._fill = 0
        if not self._reuse:
            self._view.release()
            self._buf = self._take()
            self._view = memoryview(self._buf)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), self._size - self._fill)
            self._view[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == self._size:
                self._flush()

    def write_file(self, fh: BinaryIO, size: int) -> None:
        """Copy `size` bytes of `fh` straight into part buffers."""
        left = size
        while left:
            room = min(left, self._size - self._fill)
            try:
                n = fh.readinto(self._view[self._fill : self._fill + room])  # type: ignore[attr-defined]
            except OSError as exc:
                raise UserError(
                    f"cannot read {getattr(fh, 'name', 'a file')}: {exc.strerror or exc}"
                ) from exc
            if not n:
                raise FileChanged(f"{getattr(fh, 'name', 'a file')} got shorter while it was being packaged")
            self._fill += n
            left -= n
            if self._fill == self._size:
                self._flush()
        if fh.read(1):
            raise FileChanged(f"{getattr(fh, 'name', 'a file')} grew while it was being packaged")

    def close(self) -> None:
        if self._fill:
            self._flush()
        self._view.release()


def write_zip(
    manifest: Manifest,
    part_size: int,
    emit: Callable[[int, memoryview], None],
    *,
    zip64_limit: int = ZIP64_LIMIT,
    crc_ahead_bytes: int = 2 << 30,
    take_buffer: Callable[[], bytearray] | None = None,
) -> ZipLayout:
    """Produce the zip of `manifest` as parts of `part_size` bytes (the last may be shorter), in order.

    `emit` may block (that is how memory stays bounded: the caller decides how many parts may wait).
    `take_buffer`: see `PartWriter`.
    """
    layout = ZipLayout.of(manifest, zip64_limit=zip64_limit)
    writer = PartWriter(part_size, emit, take_buffer)
    ahead = _CrcAhead(manifest.entries, crc_ahead_bytes)
    crcs: list[int] = []
    try:
        for i, p in enumerate(layout.placed):
            crc = ahead.get(i)
            writer.write(layout.local_header(p, crc))
            try:
                fh = p.entry.path.open("rb", buffering=0)
            except OSError as exc:
                raise UserError(f"cannot read {p.entry.path}: {exc.strerror}") from exc
            with fh:
                writer.write_file(fh, p.entry.size)
                # the CRC was taken in a first read: a write since then shows in the times or the size
                p.entry.check_unchanged(os.fstat(fh.fileno()))
            crcs.append(crc)
        writer.write(layout.central_directory(crcs))
        writer.close()
    finally:
        ahead.close()
    return layout


def part_size_for(total: int, preferred: int = 32 << 20, max_parts: int = 10_000) -> int:
    """`preferred`, doubled until the object fits in `max_parts` parts (Object Storage allows 10,000)."""
    size = preferred
    while -(-total // size) > max_parts:
        size *= 2
    return size
