"""The Binder environment for ``test_binder.py``, built in the background while the rest runs.

Registered from ``conftest.py`` with ``pytest_plugins``. Building the environment (pip,
mostly waiting for downloads and unpacking) and running every notebook in it take minutes
of mostly one core; started as soon as collection ends, that work overlaps with the rest of
the suite instead of adding to it. The Binder tests are moved to the end of the run and
wait there for their stage.

The notebooks then run once, not twice: when the Binder notebook test is part of the run,
the plain notebook items (``notebooks/``, nbval with this Python as the kernel) are
skipped, since the Binder run executes the same notebooks in strict nbval mode, with the
same sanitising, on the same checkout, in an environment that holds only what ``binder/``
installs. Run ``pytest notebooks`` (or deselect the Binder test) to execute them in this
environment instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "nbbanana-binder"
#: The test module whose tests use the environment, and the one that runs the notebooks.
BINDER_TESTS = Path(__file__).resolve().parent / "test_binder.py"
NOTEBOOKS_TEST = "test_notebooks_pass_in_the_binder_environment"
SKIP_REASON = "run once, in the Binder environment, by tests/test_binder.py::" + NOTEBOOKS_TEST


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would leak the outer virtualenv or a key."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "GEMINI_API_KEY", "GOOGLE_API_KEY")
        and not k.startswith("JUPYTER")
    }
    env.update(extra)
    return env


@dataclass
class Step:
    """One command of the build and what it printed; ``error`` is set when it failed."""

    args: list[str]
    stdout: str = ""
    error: str | None = None


@dataclass
class BinderRun:
    """A fresh virtual environment built the way repo2docker builds the Binder image, then
    every notebook run in it; both on a background thread, one command at a time."""

    base: Path
    #: Whether to run the notebooks after the build (only when their test was selected).
    with_notebooks: bool = True
    built: threading.Event = field(default_factory=threading.Event)
    notebooks_done: threading.Event = field(default_factory=threading.Event)
    build_error: str | None = None
    notebooks_output: str = ""
    notebooks_error: str | None = None
    _process: subprocess.Popen[str] | None = None
    _cancelled: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    @property
    def venv(self) -> Path:
        return self.base / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def config(self) -> Path:
        """An empty user config dir: only what postBuild writes counts."""
        return self.base / "jupyter-config"

    @property
    def kernels(self) -> Path:
        return self.base / "kernels"

    def start(self) -> BinderRun:
        self._thread = threading.Thread(target=self._main, name="binder-build", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the command in progress (the session ended before the Binder tests ran)."""
        with self._lock:
            self._cancelled = True
            process = self._process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self, args: list[str | Path], *, env: dict[str, str], cwd: Path) -> Step:
        step = Step([str(a) for a in args])
        with self._lock:
            if self._cancelled:
                step.error = "cancelled"
                return step
            self._process = subprocess.Popen(
                step.args,
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # so that cancel() stops pip's children too
            )
        stdout, stderr = self._process.communicate()
        step.stdout = stdout
        if self._process.returncode != 0:
            step.error = (
                f"{' '.join(step.args)} exited {self._process.returncode}\n"
                f"--- stdout\n{stdout[-20000:]}\n--- stderr\n{stderr[-6000:]}"
            )
        return step

    def _main(self) -> None:
        try:
            self.build_error = self._build()
        except Exception as exc:  # reported by the tests that wait for it, not lost
            self.build_error = f"building the Binder environment raised {exc!r}"
        finally:
            self.built.set()
        try:
            if not self.with_notebooks:
                self.notebooks_error = "the notebook test was not selected"
            elif self.build_error is not None:
                self.notebooks_error = f"no Binder environment:\n{self.build_error}"
            else:
                self._run_notebooks()
        except Exception as exc:
            self.notebooks_error = f"running the notebooks raised {exc!r}"
        finally:
            self.notebooks_done.set()

    def _build(self) -> str | None:
        self.config.mkdir(parents=True)
        created = self._run([sys.executable, "-m", "venv", self.venv], env=clean_env(), cwd=ROOT)
        if created.error:
            return created.error
        env = clean_env(
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            VIRTUAL_ENV=str(self.venv),
            JUPYTER_CONFIG_DIR=str(self.config),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        # What repo2docker does: requirements.txt first, then postBuild from the root.
        pip: list[str | Path] = [self.bin / "python", "-m", "pip", "install", "--quiet"]
        steps: list[list[str | Path]] = [
            [*pip, "-r", BINDER / "requirements.txt"],
            ["bash", BINDER / "postBuild"],
        ]
        for args in steps:
            step = self._run(args, env=env, cwd=ROOT)
            if step.error:
                return step.error
        return None

    def _run_notebooks(self) -> None:
        # The Binder environment's Python as a named kernel, registered outside it.
        install: list[str | Path] = [self.bin / "python", "-m", "ipykernel", "install"]
        install += ["--prefix", self.kernels]
        step = self._run([*install, "--name", KERNEL_NAME], env=clean_env(), cwd=self.base)
        if step.error:
            self.notebooks_error = step.error
            return
        # A copy of the notebooks folder: they must not depend on the rest of the checkout.
        work = self.base / "run"
        shutil.copytree(NOTEBOOKS, work / "notebooks", ignore=shutil.ignore_patterns(".ipynb_*"))
        (work / "pytest.ini").write_text("[pytest]\n")
        env = clean_env(JUPYTER_PATH=str(self.kernels / "share" / "jupyter"))
        command: list[str | Path] = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        # Not -q: the output names each notebook run, which the test checks.
        step = self._run(
            [*command, "--nbval-kernel-name", KERNEL_NAME, "notebooks"], env=env, cwd=work
        )
        self.notebooks_output, self.notebooks_error = step.stdout, step.error


_RUN = pytest.StashKey[BinderRun]()


def _is_binder_test(item: pytest.Item) -> bool:
    return item.path == BINDER_TESTS


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb" and item.path.parent == NOTEBOOKS


@pytest.hookimpl(trylast=True)  # after -k/-m have deselected what they deselect
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    binder = [item for item in items if _is_binder_test(item)]
    if not binder or config.option.collectonly:
        return
    items[:] = [item for item in items if not _is_binder_test(item)] + binder
    # --nbval, --nbval-lax or another kernel: the notebook items check something else.
    flags = ("nbval", "nbval_lax", "nbval_kernel_name")
    same_check = not any(getattr(config.option, flag, None) for flag in flags)
    with_notebooks = any(item.name == NOTEBOOKS_TEST for item in binder)
    if same_check and with_notebooks:
        for item in items:
            if _is_notebook_cell(item):
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
    # tmp_path_factory's folder (kept for a look after a failure), before fixtures exist.
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    run = BinderRun(factory.mktemp("binder"), with_notebooks).start()
    config.stash[_RUN] = run
    config.add_cleanup(run.cancel)


@pytest.fixture(scope="session")
def binder_run(request: pytest.FixtureRequest) -> BinderRun:
    """The environment being built; wait on ``built`` or ``notebooks_done`` before use."""
    return request.config.stash[_RUN]
