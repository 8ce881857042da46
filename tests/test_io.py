"""Media I/O: decode -> encode must change nothing but the pixels.

Identity round trips (VideoSource -> VideoSink with untouched frames) on the shared sample videos
check frame count, every video timestamp, bit-exact audio packets; synthetic clips cover VFR,
rotation, odd sizes, codec fallback; plus job planning and atomic output.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamdp.config import OutputConfig
from streamdp.errors import InputError, OutputError
from streamdp.media import TMP_MARKER, atomic_output, plan_jobs, probe_kind
from streamdp.sink import VideoSink, write_image
from streamdp.source import VideoSource, read_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MEDIA = SHARED / "media"
FAST = OutputConfig(preset="ultrafast", crf=30)


def sample(name: str) -> Path:
    path = MEDIA / name
    if not path.exists():
        pytest.skip(f"needs the shared sample {path} (the shared data folder beside the checkout is absent)")
    return path


# ----------------------------------------------------------------------------------- helpers


def make_clip(
    path: Path,
    pts: list[int] | None = None,
    n: int = 12,
    time_base: Fraction = Fraction(1, 1000),
    size: tuple[int, int] = (64, 48),
    rotation: int | None = None,
    audio: str | None = None,
) -> Path:
    """A small H.264 clip with the given frame pts (and optionally a mono audio track)."""
    pts = pts if pts is not None else [i * 40 for i in range(n)]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25, time_base=time_base, options={"preset": "ultrafast"})
        v.width, v.height = size
        v.pix_fmt = "yuv420p"
        v.codec_context.time_base = time_base
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream(audio, rate=16000)
            a.layout = "mono"
        for i, p in enumerate(pts):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            img[:, : (i * 7) % size[0] + 1] = (200, 90, 30)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = p, time_base
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        if a is not None:
            t = np.arange(16000) / 16000
            tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
            for k in range(10):
                af = av.AudioFrame.from_ndarray(tone[None, k * 1600 : (k + 1) * 1600], format="s16", layout="mono")
                af.sample_rate, af.pts = 16000, k * 1600
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def roundtrip(src: Path, dst: Path, cfg: OutputConfig = FAST) -> tuple[VideoSource, VideoSink, int]:
    with VideoSource(src) as source:
        sink = VideoSink(dst, src, source.info, cfg)
        n = 0
        for frame in source.frames():
            sink.write(frame)
            n += 1
        sink.close()
    return source, sink, n


def read_packets(path: Path) -> dict[str, list[tuple[Fraction | None, Fraction | None, bytes]]]:
    """Per stream type, every packet in file order: (pts seconds, dts seconds, bytes)."""
    out: dict[str, list] = {}
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.size == 0:
                continue
            tb = p.time_base
            pts = None if p.pts is None else p.pts * tb
            dts = None if p.dts is None else p.dts * tb
            out.setdefault(p.stream.type, []).append((pts, dts, bytes(p)))
    return out


def video_times(path: Path) -> list[Fraction]:
    """Presentation times (exact fractions of a second) of every video frame, in order."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        return sorted(p.pts * p.time_base for p in c.demux(st) if p.size and p.pts is not None)


def decoded_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_MARKER in p.name)


# ------------------------------------------------------------------------- identity round trips


@pytest.mark.parametrize(
    "name, audio_codec",
    [("single_face.mp4", "mp3"), ("WolfgangLanger_Pexels.mp4", "aac"), ("face_noface.mov", "aac")],
)
def test_identity_roundtrip_keeps_timing_and_audio(name: str, audio_codec: str, tmp_path: Path) -> None:
    src = sample(name)
    dst = tmp_path / f"out{src.suffix}"
    source, sink, n = roundtrip(src, dst)

    assert dst.exists() and leftovers(tmp_path) == []
    assert sink.notes == []
    assert source.corrupt_frames == 0
    # frame count: what we decoded == what the container says == what the output decodes to
    with av.open(str(src)) as c:
        declared = c.streams.video[0].frames
    assert n == declared == decoded_count(dst)
    # every video timestamp kept exactly (compared in seconds: the mp4 muxer may rescale units)
    assert video_times(dst) == video_times(src)
    # audio: same packets, byte for byte, in the same order, at the same times
    a_in, a_out = read_packets(src)["audio"], read_packets(dst)["audio"]
    assert len(a_in) == len(a_out)
    assert [p[2] for p in a_in] == [p[2] for p in a_out]
    assert [p[:2] for p in a_in] == [p[:2] for p in a_out]
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.codec.name.startswith(audio_codec[:2])
        assert c.streams.video[0].codec_context.name == "h264"
    # no rotation in, none out
    assert VideoSource(dst).info.rotation == source.info.rotation == 0


def test_hevc_mov_info(tmp_path: Path) -> None:
    with VideoSource(sample("face_noface.mov")) as s:
        info = s.info
        assert (info.width, info.height, info.codec) == (960, 540, "hevc")
        assert info.has_audio and info.frame_count == 169
        assert info.time_base == Fraction(1, 15360)
        first = next(s.frames())
        assert first.image.shape == (540, 960, 3) and first.image.dtype == np.uint8
        assert first.image.flags.c_contiguous and first.pts == 0 and first.time_base == info.time_base


def test_vfr_pts_kept(tmp_path: Path) -> None:
    pts = [0, 40, 50, 130, 140, 300, 333, 400, 401, 900]  # ms: wildly irregular
    src = make_clip(tmp_path / "vfr.mp4", pts=pts)
    with VideoSource(src) as s:
        got = [f.pts * f.time_base for f in s.frames()]
    assert got == [Fraction(p, 1000) for p in pts]
    dst = tmp_path / "out" / "vfr.mp4"  # a folder that does not exist yet
    _, _, n = roundtrip(src, dst)
    assert n == len(pts) == decoded_count(dst)
    assert video_times(dst) == video_times(src) == [Fraction(p, 1000) for p in pts]


def test_vfr_pts_kept_in_mkv(tmp_path: Path) -> None:
    pts = [0, 40, 50, 130, 140, 300, 333, 400]
    src = make_clip(tmp_path / "vfr.mkv", pts=pts)
    dst = tmp_path / "vfr_out.mkv"
    roundtrip(src, dst)
    assert video_times(dst) == [Fraction(p, 1000) for p in pts]


def test_rotation_kept(tmp_path: Path) -> None:
    # PyAV's set_display_rotation is counter-clockwise, like ffprobe's display-matrix "rotation".
    src = make_clip(tmp_path / "rot.mp4", rotation=90)
    with VideoSource(src) as s:
        assert s.info.rotation == 270  # clockwise degrees to turn the picture upright
        assert s.info.display_matrix is not None
        # pixels are NOT rotated: still the coded 64x48
        assert next(s.frames()).image.shape == (48, 64, 3)
    dst = tmp_path / "rot_out.mp4"
    roundtrip(src, dst)
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90  # what ffprobe would print for the side data
        assert (frame.width, frame.height) == (64, 48)
    with VideoSource(dst) as s:
        assert s.info.rotation == 270
        assert s.info.display_matrix == VideoSource(src).info.display_matrix


def test_odd_size_is_padded_and_noted(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "odd.mkv", n=4, size=(64, 48))
    with VideoSource(src) as s:
        info = s.info
        info.width, info.height = 63, 47  # pretend: feed odd frames
        sink = VideoSink(tmp_path / "odd_out.mp4", src, info, FAST)
        for f in s.frames():
            f.image = np.ascontiguousarray(f.image[:47, :63])
            sink.write(f)
        sink.close()
    assert any("odd dimensions" in n for n in sink.notes)
    with av.open(str(tmp_path / "odd_out.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 48)


def test_webm_picks_vp9_and_transcodes_pcm(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "pcm.mov", n=6, audio="pcm_s16le")
    dst = tmp_path / "out.webm"
    _, sink, n = roundtrip(src, dst)
    assert any("libvpx-vp9" in note for note in sink.notes)
    assert any("transcoded" in note and "pcm_s16le" in note for note in sink.notes)
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
        assert c.streams.audio[0].codec_context.name in ("opus", "libopus", "vorbis", "libvorbis")
    assert decoded_count(dst) == n == 6


def test_pcm_audio_copied_when_container_allows(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "pcm.mov", n=6, audio="pcm_s16le")
    dst = tmp_path / "pcm_out.mov"
    _, sink, _ = roundtrip(src, dst)
    assert sink.notes == []
    a_in = b"".join(p[2] for p in read_packets(src)["audio"])
    a_out = b"".join(p[2] for p in read_packets(dst)["audio"])
    assert a_in == a_out  # PCM packet boundaries are the demuxer's choice; the samples are what count


# --------------------------------------------------------------------------------- bad inputs


def test_truncated_file_decodes_what_it_can(tmp_path: Path) -> None:
    data = sample("WolfgangLanger_Pexels.mp4").read_bytes()  # index (moov) at the front
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with VideoSource(cut) as s:
        n = sum(1 for _ in s.frames())
    assert 0 < n < 472


def test_truncated_without_index_is_a_clear_error(tmp_path: Path) -> None:
    data = sample("single_face.mp4").read_bytes()  # index (moov) at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(InputError, match="moov"):
        VideoSource(cut)


def test_corrupt_packets_are_skipped(tmp_path: Path) -> None:
    data = bytearray(sample("single_face.mp4").read_bytes())
    rng = np.random.default_rng(0)
    for frac in (0.3, 0.5):
        at = int(len(data) * frac)
        data[at : at + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with VideoSource(bad) as s:
        n = sum(1 for _ in s.frames())
    assert 0 < n <= 72


def test_text_file_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video at all\n" * 40, encoding="utf-8")
    with pytest.raises(InputError, match="not a readable video"):
        VideoSource(fake)
    with pytest.raises(InputError, match="not a readable video"):
        probe_kind(fake)


def test_garbage_named_jpg(tmp_path: Path) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(InputError, match="not a readable video or image"):
        probe_kind(fake)
    with pytest.raises(InputError, match="not a readable video or image"):
        read_image(fake)


def test_zero_frame_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w", options={"movflags": "empty_moov"}) as c:
        st = c.add_stream("libx264", rate=25)
        st.width, st.height = 64, 48
        c.start_encoding()
    with pytest.raises(InputError, match="no video frames"):
        VideoSource(path)


def test_missing_and_audio_only(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        VideoSource(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="input not found"):
        probe_kind(tmp_path / "nope.mp4")
    audio = tmp_path / "sound.mp4"
    with av.open(str(audio), "w") as c:
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 16000, 0
        c.mux(a.encode(af))
        c.mux(a.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        VideoSource(audio)


def test_probe_kind_samples() -> None:
    assert probe_kind(sample("single_face.jpg")) == "image"
    assert probe_kind(sample("single_face.mp4")) == "video"
    assert probe_kind(sample("face_noface.mov")) == "video"


# ------------------------------------------------------------------------------------- images


def test_image_roundtrip(tmp_path: Path) -> None:
    frame = read_image(sample("single_face.jpg"))
    h, w = frame.image.shape[:2]
    assert frame.image.dtype == np.uint8 and frame.image.shape[2] == 3 and frame.pts is None
    out = write_image(tmp_path / "sub" / "a.png", frame.image, OutputConfig())
    assert np.array_equal(read_image(out).image, frame.image)  # PNG is lossless
    jpg = write_image(tmp_path / "a.jpg", frame.image, OutputConfig(jpeg_quality=90))
    back = read_image(jpg).image
    assert back.shape == (h, w, 3)
    assert np.abs(back.astype(int) - frame.image.astype(int)).mean() < 4
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "sub") == []
    assert (os.stat(jpg).st_mode & 0o777) != 0o600  # not the temp file's private mode


# ----------------------------------------------------------------------------------- planning


def test_plan_single_file(tmp_path: Path) -> None:
    src = sample("single_face.mp4")
    (job,) = plan_jobs(src, tmp_path / "x" / "anon.mp4")
    assert (job.src, job.dst, job.kind) == (src, tmp_path / "x" / "anon.mp4", "video")
    (job,) = plan_jobs(src, tmp_path)  # an existing folder: keep the name inside it
    assert job.dst == tmp_path / "single_face.mp4"
    with pytest.raises(OutputError, match="extension"):
        plan_jobs(src, tmp_path / "anon.txt")
    with pytest.raises(OutputError):
        plan_jobs(src, tmp_path / "anon.jpg")  # a video cannot become an image


def test_plan_folder_mirrors_tree(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    (src / ".cache").mkdir()
    for rel in ["top.mp4", "a/photo.JPG", "a/b/clip.mov", "a/b/still.webp", "a/notes.txt", ".hidden.mp4",
                ".cache/x.mp4", "a/b/readme"]:  # fmt: skip
        (src / rel).write_bytes(b"x")
    out = tmp_path / "out"
    plan = plan_jobs(src, out)
    got = sorted((j.src.relative_to(src).as_posix(), j.dst.relative_to(out).as_posix(), j.kind) for j in plan)
    assert got == [
        ("a/b/clip.mov", "a/b/clip.mov", "video"),
        ("a/b/still.webp", "a/b/still.webp", "image"),
        ("a/photo.JPG", "a/photo.JPG", "image"),
        ("top.mp4", "top.mp4", "video"),
    ]
    assert plan.skipped == 3  # notes.txt, readme, .hidden.mp4 (the .cache folder is not entered)
    assert not out.exists()  # planning writes nothing


def test_plan_refusals(tmp_path: Path) -> None:
    src = sample("single_face.mp4")
    with pytest.raises(InputError, match="input not found"):
        plan_jobs(tmp_path / "missing.mp4", tmp_path / "o.mp4")
    folder = tmp_path / "in"
    folder.mkdir()
    clip = folder / "clip.mp4"
    clip.write_bytes(src.read_bytes())
    with pytest.raises(OutputError, match="same as the input"):
        plan_jobs(clip, clip)
    with pytest.raises(OutputError, match="same as the input"):
        plan_jobs(clip, folder / "." / ".." / "in" / "clip.mp4")
    with pytest.raises(OutputError, match="same as the input"):
        plan_jobs(folder, folder)
    with pytest.raises(OutputError, match="inside the input folder"):
        plan_jobs(folder, folder / "anon")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        plan_jobs(folder, blocker)
    with pytest.raises(OutputError, match="is a file"):
        plan_jobs(clip, blocker / "sub" / "anon.mp4")
    empty = tmp_path / "empty"
    (empty / "deep").mkdir(parents=True)
    (empty / "deep" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no videos or images found"):
        plan_jobs(empty, tmp_path / "o")


def test_plan_unwritable_output(tmp_path: Path) -> None:
    src = sample("single_face.mp4")
    if os.geteuid() == 0:
        # root ignores permission bits, so chmod 555 proves nothing; /proc refuses even root.
        if not Path("/proc/self").exists():
            pytest.skip("running as root without /proc: no read-only place to test with")
        target = Path("/proc/streamdp-test/out")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "out"
    try:
        with pytest.raises(OutputError, match="not writable|cannot be created"):
            plan_jobs(src, target / "anon.mp4")
        with pytest.raises(OutputError, match="not writable|cannot be created"):
            plan_jobs(src.parent, target)
    finally:
        if os.geteuid() != 0:
            (tmp_path / "ro").chmod(0o755)


# ------------------------------------------------------------------------------ atomic output


def test_atomic_output_helper(tmp_path: Path) -> None:
    dst = tmp_path / "a.mp4"
    with atomic_output(dst) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name.startswith(".a.mp4")
        tmp.write_bytes(b"done")
    assert dst.read_bytes() == b"done" and leftovers(tmp_path) == []
    with pytest.raises(RuntimeError):
        with atomic_output(dst) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert dst.read_bytes() == b"done" and leftovers(tmp_path) == []


def test_sink_abort_leaves_nothing(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=8)
    out_dir = tmp_path / "out"
    dst = out_dir / "anon.mp4"
    with VideoSource(src) as s:
        sink = VideoSink(dst, src, s.info, FAST)
        for i, f in enumerate(s.frames()):
            sink.write(f)
            if i == 4:
                break
        assert not dst.exists()  # nothing at dst while encoding
        sink.abort()
    assert not dst.exists()
    assert list(out_dir.iterdir()) == []


def test_sink_finish_partial(tmp_path: Path) -> None:
    src = sample("single_face.mp4")
    dst = tmp_path / "anon.mp4"
    with VideoSource(src) as s:
        sink = VideoSink(dst, src, s.info, FAST)
        for i, f in enumerate(s.frames()):
            sink.write(f)
            if i == 29:
                break
        partial = sink.finish_partial()
    assert partial == tmp_path / "anon.partial.mp4"
    assert partial.exists() and not dst.exists() and leftovers(tmp_path) == []
    assert decoded_count(partial) == 30
    pk = read_packets(partial)
    end = max(p[0] for p in pk["video"])
    assert pk["audio"] and all(p[1] <= end + Fraction(1, 10) for p in pk["audio"])  # audio cut with the video


def test_sink_without_frames_refuses(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=3)
    dst = tmp_path / "o" / "anon.mp4"
    with VideoSource(src) as s:
        sink = VideoSink(dst, src, s.info, FAST)
    with pytest.raises(OutputError, match="no frames"):
        sink.close()
    assert not dst.exists() and leftovers(tmp_path / "o") == []


def test_subtitles_copied_or_dropped_with_note(tmp_path: Path) -> None:
    base = make_clip(tmp_path / "base.mkv", n=12)
    src = tmp_path / "subs.mkv"
    cues = [(0, b"line 0"), (200, b"line 1"), (400, b"line 2")]
    with av.open(str(base)) as i, av.open(str(src), "w") as o:
        v = o.add_stream_from_template(i.streams.video[0])
        s = o.add_mux_stream("subrip", time_base=Fraction(1, 1000))
        items = [(p.dts * p.time_base, 0, p) for p in i.demux(i.streams.video[0]) if p.size]
        for t, text in cues:
            p = av.Packet(text)
            p.pts = p.dts = t
            p.duration, p.time_base = 150, Fraction(1, 1000)
            items.append((Fraction(t, 1000), 1, p))
        for _, kind, p in sorted(items, key=lambda x: (x[0], x[1])):
            p.stream = v if kind == 0 else s
            o.mux(p)
    _, sink, _ = roundtrip(src, tmp_path / "out.mkv")
    assert sink.notes == []
    assert [(p[0], p[2]) for p in read_packets(tmp_path / "out.mkv")["subtitle"]] == [
        (Fraction(t, 1000), text) for t, text in cues
    ]
    _, sink, _ = roundtrip(src, tmp_path / "out.mp4")  # mp4 cannot hold SubRip
    assert any("subtitle" in n and "dropped" in n for n in sink.notes)
    _, sink, _ = roundtrip(src, tmp_path / "none.mkv", OutputConfig(preset="ultrafast", copy_subtitles=False))
    assert "subtitle" not in read_packets(tmp_path / "none.mkv")


def test_nonincreasing_pts_are_nudged(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", n=5)
    dst = tmp_path / "out.mp4"
    with VideoSource(src) as s:
        frames = list(s.frames())
        sink = VideoSink(dst, src, s.info, FAST)
    frames[3].pts = frames[1].pts  # a broken decoder timestamp
    for f in frames:
        sink.write(f)
    sink.close()
    assert sink.pts_adjusted == 1 and any("non-increasing" in n for n in sink.notes)
    assert decoded_count(dst) == 5


def test_fast_i420_conversion_matches_swscale_bt601() -> None:
    """The encoders' OpenCV RGB->I420 fast path (``encode.video_frame``, files and live) must agree
    with swscale's BT.601 limited conversion."""
    import av
    import cv2

    from streamdp.encode import video_frame

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    fast = video_frame(img).to_ndarray().astype(int)
    ref = (
        av.VideoFrame.from_ndarray(img, format="rgb24")
        .reformat(format="yuv420p", dst_colorspace="itu601", dst_color_range="MPEG")
        .to_ndarray()
        .astype(int)
    )
    assert np.abs(fast[:120] - ref[:120]).max() <= 1  # luma
    assert np.abs(fast[120:] - ref[120:]).max() <= 4  # chroma (different subsampling filters)
    assert np.abs(fast - ref).mean() < 0.5


@pytest.mark.parametrize("colorspace, fast", [(None, True), (6, True), (1, False)])  # -, SMPTE 170M, BT.709
def test_source_rgb_conversion_matches_swscale(tmp_path: Path, colorspace: str | None, fast: bool) -> None:
    """The source's OpenCV I420->RGB path (BT.601 limited) agrees with swscale; BT.709 uses swscale."""
    import cv2

    from streamdp.decode import to_rgb as _to_rgb

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    src = av.VideoFrame.from_ndarray(img, format="rgb24")
    frame = src.reformat(format="yuv420p", dst_colorspace="itu709" if colorspace == 1 else "itu601")
    if colorspace is not None:
        frame.colorspace = colorspace
    frame.color_range = 1  # MPEG / limited
    got = _to_rgb(frame).astype(int)
    ref = frame.to_ndarray(format="rgb24", src_color_range=1).astype(int)
    assert got.shape == (120, 160, 3)
    if fast:
        # within a couple of levels of swscale, and no farther from the true RGB than swscale is
        assert np.abs(got - ref).mean() < 1.5 and np.percentile(np.abs(got - ref), 99.9) <= 6
        truth = img.astype(int)
        assert np.abs(got - truth).mean() <= np.abs(ref - truth).mean() + 0.25
    else:
        assert np.array_equal(got, ref)
