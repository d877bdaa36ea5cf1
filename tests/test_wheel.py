"""An installed wheel is self-sufficient: it migrates, serves and documents itself with no
source tree around.

Built with hatchling, installed into a fresh virtualenv offline (the locked runtime
dependencies from uv's cache, then the wheel), and run from an empty directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.identity import free_port

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 90


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".bootstrap" / "bin" / "uv")
    if not Path(found).is_file():
        pytest.fail("uv is missing: run `make .venv/.synced`")
    return found


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _wait_ready(url: str, server: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, "the installed server exited"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} never became ready")


@pytest.mark.slow
def test_an_installed_wheel_migrates_and_serves_from_an_empty_directory(tmp_path: Path) -> None:
    dist, venv, workdir = tmp_path / "dist", tmp_path / "venv", tmp_path / "run"
    workdir.mkdir()
    _run(Path(sys.executable).parent / "hatchling", "build", "-t", "wheel", "-d", dist, cwd=ROOT)
    (wheel,) = dist.glob("coffer-*.whl")
    uv = _uv()
    _run(uv, "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    lock = ROOT / "requirements" / "app.lock"
    _run(uv, "pip", "sync", "--quiet", "--offline", "--python", python, lock, cwd=tmp_path)
    _run(
        uv,
        "pip",
        "install",
        "--quiet",
        "--offline",
        "--no-deps",
        "--python",
        python,
        wheel,
        cwd=tmp_path,
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "COFFER_ENV": "test",
        "COFFER_DATABASE_URL": f"sqlite:///{workdir / 'coffer.db'}",
    }
    coffer = venv / "bin" / "coffer"

    assert "database at head" in _run(coffer, "migrate", cwd=workdir, env=env)

    port = free_port()
    server = subprocess.Popen(
        [str(coffer), "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        # The documentation's assets come from the installed packages, not a CDN.
        assets = [
            httpx.get(f"http://127.0.0.1:{port}/docs/assets/{name}", timeout=10)
            for name in ("swagger-init.js", "swagger-ui-bundle.js", "redoc.standalone.js")
        ]
        # So do the web app's templates and its own stylesheet and script.
        web = [
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
            for path in ("/app/sign-in", "/app/static/app.css", "/app/static/app.js")
        ]
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert ready.json()["data"]["status"] == "ready", stderr[-2000:]
    assert [asset.status_code for asset in assets] == [200, 200, 200]
    assert [page.status_code for page in web] == [200, 200, 200]
    assert "Email or phone number" in web[0].text
