"""The shipped presets (configs/*.yaml), presets by name, precedence defaults < file < flags for
run, live and relay, and ``streamdp config show`` / ``config list``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streamdp.cli import _overrides, _parser, main
from streamdp.config import Config, load_config
from streamdp.errors import ConfigError
from streamdp.live.cli import load_live_config as _load
from streamdp.presets import config_path, preset_names, preset_path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PRESETS = sorted(p for p in CONFIGS.glob("*.yaml") if p.stem != "train")
EXPECTED = {"default", "recorded", "live-camera", "relay", "multi", "gpu", "batch"}


def test_one_preset_per_use_is_shipped() -> None:
    assert EXPECTED <= {p.stem for p in PRESETS}
    assert set(preset_names()) == {p.stem for p in PRESETS}  # train.yaml is not an anonymizer config


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_says_what_it_is_for(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, Config)
    lines = path.read_text(encoding="utf-8").splitlines()
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    assert head and len(head[0]) > 20, f"{path.name}: no leading comment saying what it is for"
    use = [line for line in head if line.startswith("# Use: streamdp ")]
    assert use, f"{path.name}: the leading comment has no '# Use: streamdp ...' line"
    # The command it shows is a real subcommand taking --config, and its --config value resolves.
    words = use[0].removeprefix("# Use: ").split()
    assert words[1] in {"run", "live", "relay", "batch"}, use[0]
    value = words[words.index("--config") + 1]
    assert config_path(value).resolve() == path.resolve() or (REPO / value).resolve() == path.resolve()


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
@pytest.mark.parametrize("where", ["top", "nested"])
def test_an_unknown_key_in_a_preset_copy_is_refused(path: Path, where: str, tmp_path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if where == "top":
        data["detekt"] = {"min_confidence": 0.5}
        key = "detekt"
    else:
        data.setdefault("mechanism", {}).setdefault("dp_image", {})["epsilom"] = 1.0
        key = "mechanism.dp_image.epsilom"
    copy = tmp_path / path.name
    copy.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        load_config(copy)


def test_default_preset_is_the_full_default() -> None:
    """configs/default.yaml documents every key, each at its default."""
    path = CONFIGS / "default.yaml"
    assert load_config(path) == Config()

    def keys(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in tree.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
        return out

    missing = keys(Config().model_dump(mode="json")) - keys(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert not missing, f"configs/default.yaml lacks {sorted(missing)}"


def test_presets_ship_inside_the_package() -> None:
    """streamdp/configs is what the wheel's package-data ships: the same files."""
    import streamdp

    shipped = Path(streamdp.__file__).resolve().parent / "configs"
    assert {p.name for p in shipped.glob("*.yaml")} >= {p.name for p in PRESETS}
    assert preset_path("relay") is not None and preset_path("relay.yaml") == preset_path("relay")


def test_a_preset_by_name_and_a_local_file_of_that_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = _parser().parse_args(["relay", "in.mp4", "--config", "relay"])
    assert args.config.resolve() == (CONFIGS / "relay.yaml").resolve()
    # A file that exists always wins over the preset of that name.
    (tmp_path / "relay").write_text("live: {crf: 30}\n", encoding="utf-8")
    args = _parser().parse_args(["relay", "in.mp4", "--config", "relay"])
    assert args.config == Path("relay")
    assert _load(args).live.crf == 30
    args = _parser().parse_args(["batch", "archive", "-o", "out", "--config", "batch"])
    assert args.config.resolve() == (CONFIGS / "batch.yaml").resolve()
    # Neither: the path as given, and the one-line error says it is missing.
    args = _parser().parse_args(["run", "in.mp4", "-o", "o.mp4", "--config", "no-such-preset"])
    with pytest.raises(ConfigError, match="config file not found: no-such-preset"):
        load_config(args.config, _overrides(args))
    assert preset_path("train") is None and preset_path("../configs/relay") is None


# ----------------------------------------------------------------------------- precedence


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """A config setting some keys that flags then override, and some they do not."""
    path = tmp_path / "layered.yaml"
    path.write_text(
        "mechanism:\n  name: blur\n  dp_image: {epsilon: 2.0, truncation: 0.5}\n"
        "live: {fps: 10, deadline_ms: 400, transport: udp, crf: 30, camera_size: [640, 360]}\n"
        "track: {coast_seconds: 1.5}\n",
        encoding="utf-8",
    )
    return path


def test_run_defaults_then_file_then_flags(layered: Path) -> None:
    args = _parser().parse_args(["run", "in.mp4", "-o", "o.mp4", "--config", str(layered),
                                 "-m", "pixelate", "--epsilon", "4"])
    config = load_config(args.config, _overrides(args))
    assert config.mechanism.name == "pixelate"  # flag over file
    assert config.mechanism.dp_image.epsilon == 4.0  # flag over file
    assert config.mechanism.dp_image.truncation == 0.5  # file over default
    assert config.track.coast_seconds == 1.5  # file over default
    assert config.track.box_margin == Config().track.box_margin  # default
    bare = _parser().parse_args(["run", "in.mp4", "-o", "o.mp4", "--config", str(layered)])
    assert load_config(bare.config, _overrides(bare)).mechanism.name == "blur"


def test_live_defaults_then_file_then_flags(layered: Path) -> None:
    args = _parser().parse_args(["live", "--camera", "lavfi:testsrc", "--config", str(layered),
                                 "--fps", "12", "--size", "320x240", "-m", "solid"])
    config = _load(args)
    assert config.live.fps == 12.0 and config.live.camera_fps == 12.0  # flag over file
    assert config.live.camera_size == (320, 240)  # flag over file
    assert config.mechanism.name == "solid"
    assert config.live.deadline_ms == 400.0 and config.live.crf == 30  # file over default
    assert config.live.gop_seconds == Config().live.gop_seconds  # default


def test_relay_defaults_then_file_then_flags(layered: Path) -> None:
    args = _parser().parse_args(["relay", "in.mp4", "--config", str(layered),
                                 "--deadline-ms", "150", "--transport", "tcp", "--fallback", "pixelate"])
    config = _load(args)
    assert config.live.deadline_ms == 150.0 and config.live.transport == "tcp"  # flag over file
    assert config.live.fallback == "pixelate"  # flag over default
    assert config.live.fps == 10.0 and config.live.crf == 30  # file over default
    assert config.mechanism.name == "blur"
    assert config.live.reconnect_max_s == Config().live.reconnect_max_s  # default


# ------------------------------------------------------------------------------ config show


def _show(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["config", "show", *argv])
    out = capsys.readouterr()
    return code, (yaml.safe_load(out.out) if code == 0 else {}), out.err


def test_config_show_prints_what_the_command_runs_with(layered: Path, capsys) -> None:
    code, shown, _ = _show(capsys, "--config", str(layered), "-m", "pixelate", "--epsilon", "3")
    assert code == 0
    args = _parser().parse_args(["run", "x.mp4", "-o", "y.mp4", "--config", str(layered), "-m", "pixelate",
                                 "--epsilon", "3"])
    assert Config.model_validate(shown) == load_config(args.config, _overrides(args))
    assert shown["mechanism"]["name"] == "pixelate" and shown["track"]["coast_seconds"] == 1.5
    # live: the same flags as `streamdp live`, and live's own settling (render in the background)
    code, shown, _ = _show(capsys, "--for", "live", "--config", str(layered), "--fps", "12")
    assert code == 0
    assert shown["live"]["fps"] == 12.0 and shown["live"]["camera_fps"] == 12.0
    assert shown["mechanism"]["dp_image"]["render"] == "async"


def test_config_show_redacts_stream_credentials(capsys) -> None:
    code, shown, _ = _show(capsys, "--for", "relay", "--config", "multi")
    assert code == 0
    inputs = [s["input"] for s in shown["live"]["streams"]]
    assert inputs and all("***@" in url for url in inputs)
    raw = (CONFIGS / "multi.yaml").read_text(encoding="utf-8")
    assert "user:password@" in raw  # the preset does hold credentials, the output does not
    main(["config", "show", "--for", "relay", "--config", "multi"])
    assert "password" not in capsys.readouterr().out


def test_config_show_refuses_a_flag_the_command_does_not_take(capsys) -> None:
    code, _, err = _show(capsys, "--fps", "10")
    assert code == 2 and err.strip() == "streamdp: error: --fps is not a flag of 'streamdp run'"


def test_config_show_of_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("detect:\n  min_confidence: 0.5\n  tile_sise: 256\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "streamdp", "config", "show", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == f"streamdp: error: invalid config {bad}: unknown key 'detect.tile_sise'"


def test_config_list_names_every_preset(capsys) -> None:
    assert main(["config", "list"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert set(rows) == {p.stem for p in PRESETS}
    assert rows["relay"].startswith("RTSP relay")
