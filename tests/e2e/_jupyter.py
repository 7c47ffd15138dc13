"""Start and stop an isolated JupyterLab, Notebook 7 or Voila for the end-to-end tests.

The server runs from this Python environment on 127.0.0.1 with a free port (and a random
token for JupyterLab and Notebook 7), with its own config, data and runtime folders (so
nothing of the user's Jupyter setup leaks in), the settings in ``jupyter_server_config.py``
(which leave the websocket message cap at its default), and a kernel spec pointing at this
environment's Python. The kernel gets no API key, so ``nbbanana.studio()`` runs on the
offline emulator.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "jupyter_server_config.py"
KERNEL_NAME = "nbbanana-e2e"
#: Environment variables the kernel must not see: without them it runs offline.
SECRET_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_API_KEY")


@dataclass
class JupyterLab:
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    #: Where a notebook opens: ``lab/tree`` (JupyterLab) or ``notebooks`` (Notebook 7).
    page: str = "lab/tree"

    def notebook_url(self, name: str) -> str:
        if self.page == "lab/tree":
            # A workspace of its own per notebook: JupyterLab restores a workspace's open
            # tabs, so on a shared server a test would otherwise reopen (and run) the
            # notebooks of the tests before it.
            workspace = Path(name).stem
            return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"
        return f"{self.url}/{self.page}/{name}?token={self.token}"

    def shut_down_kernels(self) -> None:
        """End every session and kernel, so that the next test on this server starts
        with none (each opens its own notebook and starts its own kernel)."""
        for kind in ("sessions", "kernels"):
            for item in self._api("GET", f"/api/{kind}") or []:
                self._api("DELETE", f"/api/{kind}/{item['id']}")

    def _api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # ended meanwhile (a session's kernel goes with it)
                return None
            raise
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_kernel_spec(data_dir: Path) -> None:
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nbbanana (e2e)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def _write_page_config(config_dir: Path) -> None:
    """Turn off the "official Jupyter news?" toast: it covers the page and asks the web."""
    labconfig = config_dir / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    page_config = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (labconfig / "page_config.json").write_text(json.dumps(page_config, indent=1))


def start_jupyterlab(work: Path, notebooks: list[Path], *, timeout: float = 90.0) -> JupyterLab:
    """Start JupyterLab serving a copy of ``notebooks``; wait until it answers."""
    return _start_jupyter_server("jupyterlab", "lab/tree", work, notebooks, timeout=timeout)


def start_notebook7(work: Path, notebooks: list[Path], *, timeout: float = 90.0) -> JupyterLab:
    """Start Jupyter Notebook 7 serving a copy of ``notebooks``; wait until it answers."""
    return _start_jupyter_server("notebook", "notebooks", work, notebooks, timeout=timeout)


def _prepare(work: Path, notebooks: list[Path]) -> tuple[Path, dict[str, str]]:
    """Copy ``notebooks`` into a fresh root; the isolated, key-free environment to run in."""
    root = work / "root"
    root.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        shutil.copy(notebook, root / notebook.name)
    data_dir = work / "data"
    _write_kernel_spec(data_dir)
    _write_page_config(work / "config")
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env.update(
        JUPYTER_CONFIG_DIR=str(work / "config"),
        JUPYTER_DATA_DIR=str(data_dir),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
        IPYTHONDIR=str(work / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    return root, env


def _start_jupyter_server(
    module: str, page: str, work: Path, notebooks: list[Path], *, timeout: float
) -> JupyterLab:
    """Run ``python -m <module>`` (a Jupyter Server application) with the test settings."""
    root, env = _prepare(work, notebooks)
    token = secrets.token_hex(16)
    port = free_port()
    log = work / f"{module}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                f"--config={CONFIG}",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.open_browser=False",
            ],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, root, log, process, page)
    _wait_until_answering(lab, f"{lab.url}/api/status", module, timeout)
    return lab


def start_voila(work: Path, notebook: Path, *, timeout: float = 90.0) -> JupyterLab:
    """Start Voila serving a copy of ``notebook`` at ``/``; wait until it answers.

    Voila starts the kernel and runs the notebook only when a page asks for it, so the
    readiness probe asks for a static file. No token: Voila shows outputs only, and the
    server is bound to 127.0.0.1 for one test.
    """
    root, env = _prepare(work, [notebook])
    port = free_port()
    log = work / "voila.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voila",
                str(root / notebook.name),
                "--no-browser",
                "--Voila.ip=127.0.0.1",
                f"--port={port}",
                "--Voila.port_retries=0",
                "--show_tracebacks=True",
            ],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = JupyterLab(f"http://127.0.0.1:{port}", "", root, log, process, page="")
    _wait_until_answering(server, f"{server.url}/voila/static/favicon.ico", "Voila", timeout)
    return server


def _wait_until_answering(lab: JupyterLab, probe: str, name: str, timeout: float) -> None:
    """Poll ``probe`` until it answers 200; stop the server and raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{lab.log_tail()}")
        request = urllib.request.Request(probe, headers={"Authorization": f"token {lab.token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    stop_jupyterlab(lab)
    raise RuntimeError(f"{name} did not start in {timeout:.0f} s:\n{lab.log_tail()}")


def stop_jupyterlab(lab: JupyterLab) -> None:
    lab.process.terminate()
    try:
        lab.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        lab.process.wait(timeout=5)


def open_studio_in_lab(page: Any, expect: Any, lab: JupyterLab, notebook: str) -> Any:
    """Open ``notebook`` in JupyterLab, wait for its kernel, run every cell from the Run
    menu and return the studio's locator once it is on the page."""
    page.goto(lab.notebook_url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    expect(page.locator(".jp-StatusBar-TextItem:has-text('| Idle')").first).to_be_visible()
    page.locator(".lm-MenuBar-itemLabel:text-is('Run')").click()
    page.locator(".lm-Menu-itemLabel:text-is('Run All Cells')").click()
    studio = page.locator(".nbb-studio")
    # JupyterLab may still ask which kernel to use if the session was not ready: accept.
    dialog_or_studio = page.locator(".jp-Dialog .jp-mod-accept").or_(studio)
    expect(dialog_or_studio.first).to_be_visible()
    if page.locator(".jp-Dialog .jp-mod-accept").count():
        page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(studio).to_be_visible()
    return studio
