"""Run app.py as a local subprocess on 127.0.0.1, and the browser that visits it: for the app tests and the
latency benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 90
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, driven by Playwright (never a downloaded browser)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@dataclass
class AppServer:
    """app.py running as a subprocess on 127.0.0.1."""

    url: str
    pid: int
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(checkpoints: Path, workdir: Path, **env: str) -> Iterator[AppServer]:
    """Serve app.py on 127.0.0.1 with the given checkpoints (and extra environment); stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "IKC_CHECKPOINTS": str(checkpoints), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(workdir),
           "GRADIO_TEMP_DIR": str(workdir / "gradio"), **env}
    log_path = workdir / "app.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not serve within {STARTUP_SECONDS} s:\n"
                                       f"{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield AppServer(url, process.pid, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
