"""Build-time check of an installed streamdp: run in the images' builder stage, it fails the build.

* every dependency streamdp declares is installed at a version its specifier allows (``pip check``
  for one package, except that ``onnxruntime-gpu`` counts as ``onnxruntime``: both provide the same
  module and the GPU image installs only the former);
* every model file in ``streamdp/models/SHA256SUMS`` is inside the installed package (package data
  made it into the wheel) and the face generator's files are random-face's, checksums matching;
* the configuration presets (``--config relay``) are inside the installed package;
* the ``streamdp`` console script loads;
* ``--gpu``: onnxruntime offers CUDAExecutionProvider (no GPU needed to list it).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

# Distributions that provide another's module: installed under either name, the need is met.
PROVIDES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu")}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def unmet(requirements: list[str], installed: dict[str, str]) -> list[str]:
    """The requirement strings (no extras, markers evaluated here) ``installed`` (name -> version) does not meet."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra's requirement
        name = _normal(req.name)
        versions = [installed[n] for n in PROVIDES.get(name, (name,)) if n in installed]
        if not any(req.specifier.contains(v, prereleases=True) for v in versions):
            missing.append(f"{text} (installed: {', '.join(versions) or 'none'})")
    return missing


def installed_versions() -> dict[str, str]:
    return {_normal(d.metadata["Name"]): d.version for d in metadata.distributions()}


def check_models() -> list[str]:
    from streamdp.errors import ModelError
    from streamdp.generator.backend import generator_data_dir
    from streamdp.model_files import MANIFEST, packaged_model, verify_generator_file, verify_shipped

    problems = []
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name = line.split(None, 1)[1].strip()
        try:
            if name.startswith("random-face:"):
                verify_generator_file(generator_data_dir() / name.split(":", 1)[1])
            else:
                path = packaged_model(name)
                if not path.is_file():
                    raise ModelError(f"model file {name} is not in the installed package")
                verify_shipped(path)
        except (ModelError, OSError) as exc:
            problems.append(str(exc))
    return problems


def check_presets() -> list[str]:
    import streamdp

    folder = Path(streamdp.__file__).resolve().parent / "configs"
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return [] if "relay" in names else [f"configuration presets missing from the installed package ({folder}: {names})"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="also require onnxruntime's CUDAExecutionProvider")
    args = parser.parse_args(argv)

    problems = [f"unmet dependency: {m}" for m in unmet(metadata.requires("streamdp") or [], installed_versions())]
    problems += check_models()
    problems += check_presets()
    scripts = [e for e in metadata.entry_points(group="console_scripts") if e.name == "streamdp"]
    if scripts:
        scripts[0].load()
    else:
        problems.append("no 'streamdp' console script installed")
    if args.gpu:
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            problems.append(f"onnxruntime has no CUDAExecutionProvider: {onnxruntime.get_available_providers()}")
    for p in problems:
        print(f"check_install: {p}", file=sys.stderr)
    if not problems:
        print(f"check_install: streamdp {metadata.version('streamdp')}: dependencies, models and entry point ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
