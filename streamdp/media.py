"""What to process: media kinds, job planning for a file or a folder tree, atomic output files.

``plan_jobs`` validates everything it can before any work starts (input exists, output is not the
input, output folder writable), so a run fails in the first second rather than after an hour of
encoding. ``atomic_output`` guarantees that a destination path only ever holds a complete file:
writers fill a temp file beside it, renamed onto it at the very end.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import InputError, OutputError
from .decode import error_reason

MediaKind = Literal["video", "image"]

VIDEO_EXTS: frozenset[str] = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
        ".wmv", ".flv", ".3gp", ".ogv",
    }
)  # fmt: skip
IMAGE_EXTS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

TMP_MARKER = ".streamdp-tmp-"
# Demuxers that FFmpeg would happily "open" but that are not videos for us.
_NOT_VIDEO_FORMATS = {"tty", "bin", "xbin", "adf", "idf"}


def _ext(path: Path) -> str:
    return path.suffix.lower()


def probe_kind(path: str | Path) -> MediaKind:
    """Return ``"image"`` or ``"video"`` for a file, or raise ``InputError`` (one line) saying why not."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if not path.is_file():
        raise InputError(f"not a readable video or image: {path} (not a regular file)")
    ext = _ext(path)
    if ext in IMAGE_EXTS:
        import cv2

        try:
            readable = bool(cv2.haveImageReader(str(path)))
        except cv2.error:
            readable = False
        if not readable:
            raise InputError(f"not a readable video or image: {path} (not a decodable image)")
        return "image"

    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            fmt = container.format.name
            if fmt in _NOT_VIDEO_FORMATS:
                raise InputError(f"not a readable video or image: {path} (not a media file)")
            if (fmt == "image2" or fmt.endswith("_pipe")) and ext not in VIDEO_EXTS:
                raise InputError(
                    f"not a readable video or image: {path} "
                    f"(still images must be {', '.join(sorted(IMAGE_EXTS))})"
                )
            videos = [
                s
                for s in container.streams.video
                if not (s.disposition & av.stream.Disposition.attached_pic)
            ]
            if not videos:
                if not len(container.streams):
                    raise InputError(f"no video frames in {path} (the file holds no streams)")
                raise InputError(f"no video stream in {path}")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"input not found: {path}") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise open_error(path, exc) from None
    return "video"


def _mp4_without_moov(path: Path) -> bool:
    """True for an MP4/MOV whose top-level boxes lack ``moov`` (the index is written last, so a
    recording that was cut off, or a partial download, has none and cannot be decoded at all)."""
    try:
        size_total = path.stat().st_size
        with open(path, "rb") as fh:
            pos, seen = 0, set()
            while pos + 8 <= size_total and len(seen) < 64:
                fh.seek(pos)
                head = fh.read(16)
                size = int.from_bytes(head[:4], "big")
                kind = head[4:8]
                if not (kind.isascii() and kind.isalnum()):
                    return False
                seen.add(kind)
                if size == 1 and len(head) >= 16:
                    size = int.from_bytes(head[8:16], "big")
                elif size == 0:
                    size = size_total - pos
                if size < 8:
                    return False
                pos += size
            return b"ftyp" in seen and b"moov" not in seen
    except OSError:
        return False


def open_error(path: Path, exc: BaseException) -> InputError:
    """The one-line ``InputError`` for a file FFmpeg could not open."""
    reason = error_reason(exc)
    if _mp4_without_moov(path):
        reason = "no 'moov' index: the file is incomplete, e.g. a recording that was cut off"
    return InputError(f"not a readable video or image: {path} ({reason})")


# --------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    kind: MediaKind


class JobPlan(list):
    """``list[Job]`` plus what the folder walk skipped (files that are neither video nor image)."""

    def __init__(self, jobs: list[Job] = (), skipped: list[Path] | None = None) -> None:  # type: ignore[assignment]
        super().__init__(jobs)
        self.skipped_paths: list[Path] = list(skipped or [])

    @property
    def skipped(self) -> int:
        return len(self.skipped_paths)


def _kind_by_ext(path: Path) -> MediaKind | None:
    ext = _ext(path)
    if ext in VIDEO_EXTS:
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    return None


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def check_writable_dir(folder: Path) -> None:
    """Raise ``OutputError`` unless ``folder`` exists-or-can-be-created and files can be written there.

    ``os.access`` alone is not enough (it says yes to root on a read-only folder, and knows nothing
    of read-only mounts), so after it passes we create and delete a probe file in the nearest
    existing ancestor.
    """
    anc = _nearest_existing(folder)
    if not anc.exists():
        raise OutputError(f"output folder cannot be created: {folder}")
    if not anc.is_dir():
        raise OutputError(f"output folder cannot be created: {folder} ({anc} is a file)")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {anc}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".streamdp-write-test{TMP_MARKER}", dir=anc)
    except OSError as exc:
        why = "" if exc.errno == errno.ENOENT else f" ({error_reason(exc)})"
        raise OutputError(f"output folder is not writable: {anc}{why}") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass


def plan_jobs(input: str | Path, output: str | Path) -> JobPlan:
    """Map an input file or folder onto output paths, validating up front.

    * a file -> one job. ``output`` is the output file; when it is an existing folder (or written
      with a trailing separator) the file keeps its name inside it.
    * a folder -> every video and image under it (by extension, recursively, hidden files and
      folders skipped), written under ``output`` with the same relative paths and extensions.
      Other files are skipped and counted in ``plan.skipped``.
    """
    out_str = str(output)
    input, output = Path(input), Path(output)
    if not input.exists():
        raise InputError(f"input not found: {input}")
    in_res = input.resolve()
    out_res = output.resolve()
    if out_res == in_res:
        raise OutputError(f"output is the same as the input: {output}")

    if input.is_dir():
        if _is_within(out_res, in_res):
            raise OutputError(f"output {output} is inside the input folder {input}")
        if output.exists() and not output.is_dir():
            raise OutputError(f"output must be a folder when the input is a folder: {output} is a file")
        check_writable_dir(output)
        jobs: list[Job] = []
        skipped: list[Path] = []
        for root, dirs, files in os.walk(input):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                src = Path(root) / name
                kind = None if name.startswith(".") else _kind_by_ext(src)
                if kind is None or not src.is_file():
                    skipped.append(src)
                    continue
                jobs.append(Job(src, output / src.relative_to(input), kind))
        if not jobs:
            raise InputError(f"no videos or images found under {input}")
        sources = {j.src.resolve() for j in jobs}
        for j in jobs:
            if j.dst.resolve() in sources:
                raise OutputError(f"output {j.dst} would overwrite an input file")
        return JobPlan(jobs, skipped)

    kind = probe_kind(input)
    if output.is_dir() or out_str.endswith(("/", os.sep)):
        output = output / input.name
        out_res = output.resolve()
        if out_res == in_res:
            raise OutputError(f"output is the same as the input: {output}")
    out_kind = _kind_by_ext(output)
    if out_kind is None:
        allowed = IMAGE_EXTS if kind == "image" else VIDEO_EXTS
        raise OutputError(
            f"unsupported output extension {output.suffix or '(none)'!r} for {output} "
            f"(use one of {', '.join(sorted(allowed))})"
        )
    if out_kind != kind:
        raise OutputError(f"cannot write a {kind} input as a {out_kind}: {output}")
    check_writable_dir(output.parent)
    return JobPlan([Job(input, output, kind)])


# ---------------------------------------------------------------------------------- atomic output


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, only a fallback where /proc is missing
    os.umask(mask)
    return mask


class atomic_output:  # noqa: N801  (used like a function: ``with atomic_output(dst) as tmp:``)
    """A temp path beside ``dst`` that becomes ``dst`` only on success.

    The temp name is ``.<dst.name>.streamdp-tmp-XXXX<ext>`` in ``dst``'s folder (same filesystem,
    so the final ``os.replace`` is atomic; same extension, so FFmpeg / OpenCV pick the format).
    Parent folders are created. Use as a context manager (commit on normal exit, discard on
    exception) or call ``commit()`` / ``discard()`` yourself.
    """

    def __init__(self, dst: str | Path) -> None:
        self.dst = Path(dst)
        if self.dst.is_dir():
            raise OutputError(f"output path is a folder: {self.dst}")
        try:
            self.dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.dst.name}{TMP_MARKER}", suffix=self.dst.suffix, dir=self.dst.parent
            )
        except OSError as exc:
            raise OutputError(f"cannot write output {self.dst}: {error_reason(exc)}") from None
        os.close(fd)
        self.path = Path(tmp)
        self.done = False
        self.committed = False

    def commit(self, target: str | Path | None = None) -> Path:
        """Rename the temp file onto ``dst`` (or ``target``); returns the final path."""
        final = Path(target) if target is not None else self.dst
        if self.done:
            raise RuntimeError("atomic_output already committed or discarded")
        try:
            os.chmod(self.path, 0o666 & ~_umask())  # mkstemp makes 0600; give normal file mode
            os.replace(self.path, final)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write output {final}: {error_reason(exc)}") from None
        self.done = self.committed = True
        return final

    def discard(self) -> None:
        if self.committed:
            return
        self.done = True
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.discard()
