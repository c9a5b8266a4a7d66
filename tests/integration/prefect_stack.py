"""A real local Prefect stack for integration tests and benchmarks: ``prefect server start`` on a free
port of 127.0.0.1 and ``pipeline deploy`` (deployments + process worker), each in its own session so
that everything is torn down by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.workspace import OFFLINE_DEFAULTS

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(prefect_home: Path, workspace: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for the server and worker: this checkout's code first, offline defaults, fast polling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PIPELINE__", "MLFLOW_TRACKING"))}
    env.update(OFFLINE_DEFAULTS)
    env.update(
        {
            "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
            "PREFECT_HOME": str(prefect_home),
            "PIPELINE_HOME": str(workspace),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


def wait_healthy(api_url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen | None, timeout: float = 30.0) -> int | None:
    """SIGTERM the process, wait, then SIGKILL whatever is left of its session. Returns its exit code
    after SIGTERM (None when it had to be killed)."""
    if process is None:
        return None
    code = process.poll()
    if code is None:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children (flow runs, server services) of that session
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(10)
    return code


@dataclass
class PrefectStack:
    api_url: str
    ui_url: str
    server: subprocess.Popen
    server_log: Path
    env: dict[str, str]
    worker: subprocess.Popen | None = None
    worker_log: Path | None = None

    @classmethod
    def start_server(cls, root: Path, workspace: Path, **server_env: str) -> PrefectStack:
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        # The UI asks the API at PREFECT_UI_API_URL (default: port 4200).
        env = stack_env(root / "prefect-home", workspace, PREFECT_UI_API_URL=api_url, **server_env)
        log = root / "prefect-server.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=root,
        )
        stack = cls(
            api_url, f"http://127.0.0.1:{port}", server, log, stack_env(root / "prefect-home", workspace, api_url)
        )
        try:
            wait_healthy(api_url, server, log)
        except BaseException:
            stop(server)
            raise
        return stack

    def start_serve(self, root: Path, args: list[str], **extra_env: str) -> subprocess.Popen:
        """``pipeline deploy ARGS`` (deploy, then become the worker) with its output in ``root/serve.log``.

        It starts with SIGINT ignored, as a script's ``cmd &`` starts it: the worker must still stop on SIGTERM.
        """
        self.worker_log = root / "serve.log"
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "deploy", *args],
            env={**self.env, **extra_env},
            stdout=self.worker_log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=root,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        return self.worker

    def wait_for_worker(self, client, pool: str, timeout: float = 180.0) -> None:
        """Until a worker of ``pool`` has reported to the server (it then polls for runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(
                    f"pipeline deploy exited with {self.worker.returncode}:\n{self.worker_log.read_text()[-3000:]}"
                )
            try:
                if client.read_workers_for_work_pool(pool):
                    return
            except Exception:  # the pool is created by `pipeline deploy` a moment later
                pass
            time.sleep(0.5)
        raise TimeoutError(f"no worker on pool {pool} after {timeout:.0f} s:\n{self.worker_log.read_text()[-3000:]}")

    def close(self) -> None:
        stop(self.worker)
        stop(self.server)
