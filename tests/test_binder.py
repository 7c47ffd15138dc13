"""The repository works on Binder: install it exactly as ``binder/`` says, run the notebooks.

repo2docker builds a Binder image in two steps that matter here: ``pip install -r
binder/requirements.txt``, then ``binder/postBuild`` run from the repository root with the
environment's Python first on ``PATH``. This test does the same in a fresh virtual
environment (packages come from the package index, the project from this checkout),
checks that the Jupyter Server of that environment loads the raised websocket limit,
and runs every notebook with that environment's Python as the kernel, comparing outputs
as the notebook tests do. The test runner itself (pytest, nbval) stays outside the
environment under test, so nothing it needs can hide a gap in ``binder/``.

It takes a minute or two (mostly pip), which is why it is marked ``slow``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

# pip needs a minute or two; the notebooks about as long again on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "nbbanana-binder"
#: What the raised limit must at least allow: a 30 MB photo sent by a plain FileUpload,
#: base64-encoded inside a JSON message (Jupyter Server's default is 10 MiB).
MIN_WEBSOCKET_MESSAGE = 64 * 1024 * 1024


def _run(args: list[str | Path], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"
        )
    return done.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would leak the outer virtualenv or a key."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "GEMINI_API_KEY", "GOOGLE_API_KEY")
        and not k.startswith("JUPYTER")
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh virtual environment built the way repo2docker builds the Binder image."""
    base = tmp_path_factory.mktemp("binder")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    config_dir = base / "jupyter-config"  # an empty user config dir: only postBuild's counts
    config_dir.mkdir()
    env = _clean_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_CONFIG_DIR=str(config_dir),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    _run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", "-r", BINDER / "requirements.txt"],
        env=env,
        cwd=ROOT,
    )
    _run(["bash", BINDER / "postBuild"], env=env, cwd=ROOT)
    return {"venv": venv, "bin": bin_dir, "config": config_dir, "base": base}


def test_runtime_names_a_python_the_project_supports() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, f"binder/runtime.txt should read like 'python-3.11', not {runtime!r}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert floor, f"unexpected requires-python {requires!r}"
    assert int(match.group(1)) >= int(floor.group(1)), f"{runtime} is older than {requires}"


def test_postbuild_installs_the_package_from_the_checkout(binder_env: dict[str, Path]) -> None:
    out = _run(
        [
            binder_env["bin"] / "python",
            "-c",
            "import nbbanana, nbbanana.samples as s; print(nbbanana.__file__); "
            "print(all(p.exists() for p in s.sample_paths()))",
        ],
        env=_clean_env(),
        cwd=binder_env["base"],
    )
    location, samples_ok = out.split()
    assert Path(location).is_relative_to(binder_env["venv"]), location
    assert samples_ok == "True"  # the sample images are inside the installed package


def test_postbuild_raises_the_websocket_message_limit(binder_env: dict[str, Path]) -> None:
    probe = (
        "import json; from jupyter_server.serverapp import ServerApp; "
        "app = ServerApp(); app.load_config_file(); "
        "print(json.dumps({'ws': app.tornado_settings.get('websocket_max_message_size'), "
        "'body': app.max_body_size, 'buffer': app.max_buffer_size}))"
    )
    out = _run(
        [binder_env["bin"] / "python", "-c", probe],
        env=_clean_env(JUPYTER_CONFIG_DIR=str(binder_env["config"])),
        cwd=binder_env["base"],
    )
    loaded = json.loads(out)
    assert loaded["ws"] is not None and loaded["ws"] >= MIN_WEBSOCKET_MESSAGE, loaded
    assert loaded["body"] >= loaded["ws"] and loaded["buffer"] >= loaded["ws"], loaded


def test_notebooks_pass_in_the_binder_environment(binder_env: dict[str, Path]) -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, "no notebooks to run"
    # The Binder environment's Python as a named kernel, registered outside it.
    kernels = binder_env["base"] / "kernels"
    _run(
        [
            binder_env["bin"] / "python",
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            kernels,
            "--name",
            KERNEL_NAME,
        ],
        env=_clean_env(),
        cwd=binder_env["base"],
    )
    # A copy of the notebooks folder: they must not depend on the rest of the checkout.
    work = binder_env["base"] / "run"
    shutil.copytree(NOTEBOOKS, work / "notebooks", ignore=shutil.ignore_patterns(".ipynb_*"))
    (work / "pytest.ini").write_text("[pytest]\n")
    env = _clean_env(JUPYTER_PATH=str(kernels / "share" / "jupyter"))
    out = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--nbval-kernel-name",
            KERNEL_NAME,
            "notebooks",
        ],
        env=env,
        cwd=work,
    )
    assert re.search(r"\b\d+ passed\b", out) and " failed" not in out, out[-3000:]
