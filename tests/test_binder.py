"""The repository works on Binder: install it exactly as ``binder/`` says, run the notebooks.

repo2docker builds a Binder image in two steps that matter here: ``pip install -r
binder/requirements.txt``, then ``binder/postBuild`` run from the repository root with the
environment's Python first on ``PATH``. This test does the same in a fresh virtual
environment (packages come from the package index, the project from this checkout),
checks that the Jupyter Server of that environment loads the raised websocket limit,
and runs every notebook with that environment's Python as the kernel, comparing outputs
as the notebook tests do. The test runner itself (pytest, nbval) stays outside the
environment under test, so nothing it needs can hide a gap in ``binder/``.

The build and the notebook run take minutes (mostly pip, then the kernels): ``_binder``
starts them in the background as soon as collection ends, these tests run last and wait
for them, and the plain notebook items are skipped when this run covers them (see
``_binder``'s docstring). Marked ``slow`` for that reason.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from _binder import BINDER, NOTEBOOKS, ROOT, BinderRun, clean_env

# pip needs a minute or two; the notebooks about as long again on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: What the raised limit must at least allow: a 30 MB photo sent by a plain FileUpload,
#: base64-encoded inside a JSON message (Jupyter Server's default is 10 MiB).
MIN_WEBSOCKET_MESSAGE = 64 * 1024 * 1024
#: Longer than any build seen on a busy 2-core machine, shorter than the test's timeout.
WAIT_S = 840


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


@pytest.fixture
def binder_env(binder_run: BinderRun) -> BinderRun:
    """The fresh environment, once built as Binder builds it."""
    assert binder_run.built.wait(WAIT_S), "the Binder environment was not built in time"
    if binder_run.build_error is not None:
        pytest.fail(binder_run.build_error, pytrace=False)
    return binder_run


def test_runtime_names_a_python_the_project_supports() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, f"binder/runtime.txt should read like 'python-3.11', not {runtime!r}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert floor, f"unexpected requires-python {requires!r}"
    assert int(match.group(1)) >= int(floor.group(1)), f"{runtime} is older than {requires}"


def test_postbuild_installs_the_package_from_the_checkout(binder_env: BinderRun) -> None:
    out = _run(
        [
            binder_env.bin / "python",
            "-c",
            "import nbbanana, nbbanana.samples as s; print(nbbanana.__file__); "
            "print(all(p.exists() for p in s.sample_paths()))",
        ],
        env=clean_env(),
        cwd=binder_env.base,
    )
    location, samples_ok = out.split()
    assert Path(location).is_relative_to(binder_env.venv), location
    assert samples_ok == "True"  # the sample images are inside the installed package


def test_postbuild_raises_the_websocket_message_limit(binder_env: BinderRun) -> None:
    probe = (
        "import json; from jupyter_server.serverapp import ServerApp; "
        "app = ServerApp(); app.load_config_file(); "
        "print(json.dumps({'ws': app.tornado_settings.get('websocket_max_message_size'), "
        "'body': app.max_body_size, 'buffer': app.max_buffer_size}))"
    )
    out = _run(
        [binder_env.bin / "python", "-c", probe],
        env=clean_env(JUPYTER_CONFIG_DIR=str(binder_env.config)),
        cwd=binder_env.base,
    )
    loaded = json.loads(out)
    assert loaded["ws"] is not None and loaded["ws"] >= MIN_WEBSOCKET_MESSAGE, loaded
    assert loaded["body"] >= loaded["ws"] and loaded["buffer"] >= loaded["ws"], loaded


def test_notebooks_pass_in_the_binder_environment(binder_env: BinderRun) -> None:
    """Every notebook, strict nbval, with the Binder environment's Python as the kernel
    (run by ``_binder`` in the background: kernel registered outside the environment,
    notebooks copied so that they cannot depend on the rest of the checkout)."""
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, "no notebooks to run"
    assert binder_env.notebooks_done.wait(WAIT_S), "the notebooks did not finish in time"
    if binder_env.notebooks_error is not None:
        pytest.fail(binder_env.notebooks_error, pytrace=False)
    out = binder_env.notebooks_output
    assert re.search(r"\b\d+ passed\b", out) and " failed" not in out, out[-3000:]
    missing = [path.name for path in notebooks if f"notebooks/{path.name} " not in out]
    assert not missing, f"not run: {missing}\n{out[-3000:]}"
