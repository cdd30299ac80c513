"""A real `gpubill serve` subprocess on 127.0.0.1, for the server tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx


class Server:
    def __init__(self, store: str, *extra: str):
        self.store = store
        self.extra = extra
        self.proc = None
        self.url = None

    def start(self, port: int = 0) -> "Server":
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpubill", "serve", "--store", self.store, "--port", str(port),
             *self.extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            err = self.proc.stderr.read().decode()
            raise RuntimeError(f"server did not start: {line!r} {err}")
        self.url = line.split()[-1]
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


def make_key(store: str, name: str, role: str) -> str:
    out = subprocess.run([sys.executable, "-m", "gpubill", "keys", "create", "--name", name,
                          "--role", role, "--store", store], capture_output=True, check=True)
    return out.stdout.decode().strip()


def client(server: Server, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def wait_ready(url: str, deadline: float = 20.0) -> None:
    t = time.monotonic() + deadline
    while time.monotonic() < t:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("server not ready")
