"""Bad input and faults: one clear line on stderr, a non-zero exit, nothing at the output path.

Every case runs ``streamdp run`` in-process (``streamdp.cli.main``, stderr captured with capsys)
and, for the user's real view including log output, once more as ``python -m streamdp``. After a
failure the output folder must hold exactly what it held before (no output, no report, no temp
file), and the input must be byte-identical.

Inputs are built here (synthetic clips, no shared data needed) except the corrupt-frame case on a
real file, which skips when ../shared is absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import synth
from conftest import MEDIA, need_shared
from streamdp.cli import main

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    argv: list[str]
    output: Path  # must not exist afterwards
    watch: list[Path]  # folders whose listing must not change
    inputs: list[Path]  # files that must stay byte-identical


def _listing(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: still must be a clean error, but report what happened
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------ the cases


def _plain(tmp: Path, **kw) -> Path:
    (tmp / "in").mkdir(exist_ok=True)
    return synth.make_plain_video(tmp / "in" / "clip.mp4", **kw)


def case_missing_file(tmp: Path) -> Case:
    (tmp / "in").mkdir()
    out = tmp / "out" / "x.mp4"
    (tmp / "out").mkdir()
    return Case(["run", str(tmp / "in" / "does_not_exist.mp4"), "-o", str(out)], out, [tmp / "out", tmp / "in"], [])


def case_not_media(tmp: Path) -> Case:
    (tmp / "in").mkdir()
    src = tmp / "in" / "notes.mp4"
    src.write_text("these are my holiday notes, not a video\n" * 50, encoding="utf-8")
    return _to_out(tmp, src)


def case_not_media_image_ext(tmp: Path) -> Case:
    (tmp / "in").mkdir()
    src = tmp / "in" / "photo.jpg"
    src.write_bytes(b"\x00\x01garbage" * 300)
    return _to_out(tmp, src, name="photo.jpg")


def case_truncated_header_only(tmp: Path) -> Case:
    """The first 2 KB of an mp4 whose index (moov) is at the end: ftyp + the start of mdat."""
    full = _plain(tmp, n_frames=24)
    data = full.read_bytes()
    full.unlink()
    src = tmp / "in" / "truncated.mp4"
    src.write_bytes(data[:2048])
    return _to_out(tmp, src)


def case_truncated_faststart(tmp: Path) -> Case:
    """A faststart mp4 (index first) cut in the middle of its index (moov)."""
    full = _plain(tmp, n_frames=24, faststart=True)
    data = full.read_bytes()
    start, _ = synth.mdat_span(full)
    assert data[:start].find(b"moov") > 0, "faststart: the moov must come before the media data"
    full.unlink()
    src = tmp / "in" / "cut_index.mp4"
    src.write_bytes(data[: start // 2])
    return _to_out(tmp, src)


def case_header_then_garbage(tmp: Path) -> Case:
    """A valid ftyp and the start of an mdat, then random bytes up to the original length."""
    import numpy as np

    full = _plain(tmp, n_frames=24)
    data = full.read_bytes()
    full.unlink()
    src = tmp / "in" / "garbage.mp4"
    noise = np.random.default_rng(3).integers(0, 256, len(data) - 2048, dtype=np.uint8).tobytes()
    src.write_bytes(data[:2048] + noise)
    return _to_out(tmp, src)


def case_zero_frames(tmp: Path) -> Case:
    (tmp / "in").mkdir()
    src = synth.make_zero_frame_video(tmp / "in" / "empty.mp4")
    return _to_out(tmp, src)


def case_output_parent_is_file(tmp: Path) -> Case:
    src = _plain(tmp, n_frames=6)
    blocker = tmp / "out" / "iam_a_file"
    blocker.parent.mkdir()
    blocker.write_text("x", encoding="utf-8")
    out = blocker / "sub" / "anon.mp4"
    return Case(["run", str(src), "-o", str(out)], out, [tmp / "out", tmp / "in"], [src, blocker])


def case_output_under_proc(tmp: Path) -> Case:
    """/proc refuses new entries even to root (chmod does not stop root, this does)."""
    if not Path("/proc/self").exists():
        pytest.skip("needs a Linux /proc")
    src = _plain(tmp, n_frames=6)
    out = Path("/proc/streamdp-test-no-such-dir/anon.mp4")
    return Case(["run", str(src), "-o", str(out)], out, [tmp / "in"], [src])


def case_output_is_input(tmp: Path) -> Case:
    src = _plain(tmp, n_frames=6)
    return Case(["run", str(src), "-o", str(src)], tmp / "in" / "no-such-output.mp4", [tmp / "in"], [src])


def case_output_is_input_other_spelling(tmp: Path) -> Case:
    src = _plain(tmp, n_frames=6)
    other = tmp / "in" / "." / ".." / "in" / "clip.mp4"
    return Case(["run", str(src), "-o", str(other)], tmp / "in" / "no-such-output.mp4", [tmp / "in"], [src])


def case_output_is_input_folder(tmp: Path) -> Case:
    src = _plain(tmp, n_frames=6)
    return Case(["run", str(src.parent), "-o", str(src.parent)], tmp / "in" / "in", [tmp / "in"], [src])


def case_unknown_mechanism(tmp: Path) -> Case:
    src = _plain(tmp, n_frames=6)
    c = _to_out(tmp, src)
    c.argv += ["--mechanism", "sparkles"]
    return c


def _with_config(tmp: Path, text: str) -> Case:
    src = _plain(tmp, n_frames=6)
    cfg = tmp / "cfg" / "bad.yaml"
    cfg.parent.mkdir()
    cfg.write_text(text, encoding="utf-8")
    c = _to_out(tmp, src)
    c.argv += ["--config", str(cfg)]
    c.inputs.append(cfg)
    return c


def case_config_unknown_key(tmp: Path) -> Case:
    return _with_config(tmp, "detect:\n  min_confidnce: 0.5\n")


def case_config_unknown_top_key(tmp: Path) -> Case:
    return _with_config(tmp, "mechanisms:\n  name: blur\n")


def case_config_bad_value(tmp: Path) -> Case:
    return _with_config(tmp, "detect:\n  min_confidence: 5.0\n")


def case_config_bad_type(tmp: Path) -> Case:
    return _with_config(tmp, "mechanism:\n  pixelate:\n    blocks: many\n")


def case_config_unknown_mechanism(tmp: Path) -> Case:
    return _with_config(tmp, "mechanism:\n  name: sparkles\n")


def case_config_bad_yaml(tmp: Path) -> Case:
    return _with_config(tmp, "detect:\n  min_confidence: [0.5\n  tiles: auto\n")


def case_config_not_mapping(tmp: Path) -> Case:
    return _with_config(tmp, "- just\n- a list\n")


def case_config_missing(tmp: Path) -> Case:
    src = _plain(tmp, n_frames=6)
    c = _to_out(tmp, src)
    c.argv += ["--config", str(tmp / "no_such_config.yaml")]
    return c


def _to_out(tmp: Path, src: Path, name: str = "anon.mp4") -> Case:
    out_dir = tmp / "out"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / name
    report = out_dir / "report.json"
    return Case(["run", str(src), "-o", str(out), "--report", str(report)], out, [out_dir, src.parent], [src])


CASES: dict[str, Callable[[Path], Case]] = {
    name.removeprefix("case_"): fn for name, fn in dict(globals()).items() if name.startswith("case_")
}


def _prepare(name: str, tmp_path: Path) -> tuple[Case, dict[Path, list[str]], dict[Path, str]]:
    case = CASES[name](tmp_path)
    before = {folder: _listing(folder) for folder in case.watch}
    digests = {p: _digest(p) for p in case.inputs}
    return case, before, digests


def _check_nothing_written(case: Case, before: dict[Path, list[str]], digests: dict[Path, str]) -> None:
    assert not case.output.exists(), f"something was written at the output path {case.output}"
    for folder, listing in before.items():
        assert _listing(folder) == listing, f"files appeared/disappeared under {folder}"
    for path, digest in digests.items():
        assert _digest(path) == digest, f"{path} was modified"


def _check_one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("streamdp: error: "), line
    assert "Traceback" not in err
    assert len(line) < 400, f"error line is not short: {line!r}"
    return line


# What the message must mention (case-insensitive regex alternatives): "clear" means it names the
# problem, not just "failed".
EXPECT = {
    "missing_file": r"not found|no such file|does not exist",
    "not_media": r"not a (readable )?(video|media)|invalid data|not media",
    "not_media_image_ext": r"not a (readable )?(video|image)|not a decodable image",
    "truncated_header_only": r"not a readable|truncat|corrupt|moov|invalid data|no video frames",
    "truncated_faststart": r"not a readable|truncat|corrupt|moov|invalid data|no video frames",
    "header_then_garbage": r"not a readable|truncat|corrupt|moov|invalid data|no video frames",
    "zero_frames": r"no (video )?frames|empty|zero frames",
    "output_parent_is_file": r"is a file|cannot be created|not a directory|not writable|cannot write",
    "output_under_proc": r"cannot be created|not writable|cannot write|permission|read-only|no such",
    "output_is_input": r"same as the input|is the input|overwrite",
    "output_is_input_other_spelling": r"same as the input|is the input|overwrite",
    "output_is_input_folder": r"same as the input|is the input|inside the input|overwrite",
    "unknown_mechanism": r"unknown mechanism .*sparkles",
    "config_unknown_key": r"unknown key .*min_confidnce",
    "config_unknown_top_key": r"unknown key .*mechanisms",
    "config_bad_value": r"min_confidence",
    "config_bad_type": r"blocks",
    "config_unknown_mechanism": r"unknown mechanism .*sparkles",
    "config_bad_yaml": r"yaml",
    "config_not_mapping": r"mapping",
    "config_missing": r"not found",
}
assert set(EXPECT) == set(CASES), set(EXPECT) ^ set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_in_process(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case, before, digests = _prepare(name, tmp_path)
    code, out, err = run_cli([*case.argv, "--quiet"], capsys)
    assert code != 0, f"exit code 0 for a bad input; stdout={out!r} stderr={err!r}"
    line = _check_one_line(err)
    print(f"{name}: exit {code}: {line}")
    assert re.search(EXPECT[name], line, re.IGNORECASE), f"unclear message for {name}: {line!r}"
    _check_nothing_written(case, before, digests)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_subprocess(name: str, tmp_path: Path) -> None:
    """The user's view: the real process, its real stderr (log output included), no --quiet."""
    case, before, digests = _prepare(name, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "streamdp", *case.argv],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode not in (0, None), f"exit 0 for a bad input; stderr={proc.stderr!r}"
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2 (bad input); stderr={proc.stderr!r}"
    _check_one_line(proc.stderr)
    assert "Traceback" not in proc.stderr
    _check_nothing_written(case, before, digests)


# ----------------------------------------------------------------- a corrupt frame in the middle


def _run_corrupt(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, Path]:
    out = tmp_path / "out" / "anon.mp4"
    report = tmp_path / "out" / "report.json"
    code, _, err = run_cli(["run", str(src), "-o", str(out), "--report", str(report), "--quiet"], capsys)
    assert code == 0, f"a corrupt frame in the middle must not be fatal; exit {code}: {err}"
    assert out.is_file() and report.is_file()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == [], "temp files left behind"
    entry = json.loads(report.read_text(encoding="utf-8"))["files"][0]
    print("report entry:", {k: entry[k] for k in ("frames_in", "frames_out", "corrupt_frames_skipped")})
    assert entry["status"] == "ok"
    assert isinstance(entry["corrupt_frames_skipped"], int) and entry["corrupt_frames_skipped"] >= 0
    return entry, out


@pytest.mark.parametrize("n_bytes", [4096, 12288])
def test_corrupt_frames_in_the_middle_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], n_bytes: int
) -> None:
    clean = synth.make_plain_video(tmp_path / "clean.mp4", n_frames=48, size=(320, 240), grain=6.0)
    src = synth.corrupt_middle(clean, tmp_path / "corrupt.mp4", n_bytes=n_bytes, at=0.5)
    n_in = synth.count_frames(clean)
    entry, out = _run_corrupt(src, tmp_path, capsys)
    n_out = synth.count_frames(out)
    assert n_out == entry["frames_out"], "the report's frames_out disagrees with the written file"
    assert n_out >= 0.8 * n_in, f"only {n_out} of {n_in} frames written"
    # every frame lost to the damage is counted in the report
    assert n_out + entry["corrupt_frames_skipped"] >= n_in, entry


def test_corrupt_frames_in_a_real_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = need_shared(MEDIA / "single_face.mp4")
    src = synth.corrupt_middle(real, tmp_path / "single_face_corrupt.mp4", n_bytes=8192, at=0.5)
    n_in = synth.count_frames(real)
    entry, out = _run_corrupt(src, tmp_path, capsys)
    n_out = synth.count_frames(out)
    assert n_out == entry["frames_out"]
    assert n_out >= 0.8 * n_in, f"only {n_out} of {n_in} frames written"
    assert n_out + entry["corrupt_frames_skipped"] >= n_in, entry
    # the audio is untouched by the video damage: copied packet for packet
    assert synth.audio_packets(out) == synth.audio_packets(src)


def test_relay_positionals_may_come_after_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    """``streamdp relay INPUT --loop OUTPUT`` (an option between the two positionals) is the same
    command as ``relay INPUT OUTPUT --loop``; a word too many is still the one-line error."""
    from streamdp.cli import _parse, _parser

    for argv in (["relay", "in.mp4", "--loop", "rtsp://h/out"], ["relay", "in.mp4", "rtsp://h/out", "--loop"],
                 ["relay", "--loop", "in.mp4", "rtsp://h/out"]):
        args = _parse(_parser(), argv)
        assert (args.input, args.output, args.loop) == ("in.mp4", "rtsp://h/out", True), argv
    with pytest.raises(SystemExit) as exc:
        _parse(_parser(), ["relay", "in.mp4", "--loop", "rtsp://h/out", "extra"])
    assert exc.value.code == 2 and "unrecognized arguments: extra" in capsys.readouterr().err
