"""Start and stop an isolated JupyterLab for the end-to-end test.

The server runs from this Python environment on 127.0.0.1 with a random token and a free
port, with its own config, data and runtime folders (so nothing of the user's Jupyter
setup leaks in), the settings in ``jupyter_server_config.py`` (which leave the websocket
message cap at its default), and a kernel spec pointing at this environment's Python.
The kernel gets no API key, so ``nbbanana.studio()`` runs on the offline emulator.
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

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

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
    token = secrets.token_hex(16)
    port = free_port()
    log = work / "jupyterlab.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
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
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, root, log, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early:\n{lab.log_tail()}")
        request = urllib.request.Request(
            f"{lab.url}/api/status", headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return lab
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    stop_jupyterlab(lab)
    raise RuntimeError(f"JupyterLab did not start in {timeout:.0f} s:\n{lab.log_tail()}")


def stop_jupyterlab(lab: JupyterLab) -> None:
    lab.process.terminate()
    try:
        lab.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        lab.process.wait(timeout=5)
