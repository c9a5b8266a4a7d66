"""A local S3-compatible server for integration tests: moto's server mode on a free port of 127.0.0.1, in its own
session so it is stopped by PID. Buckets live in its memory and vanish with it."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.integration.prefect_stack import free_port, stop

REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, root: Path, timeout: float = 120.0) -> S3Server:
        port = free_port()
        log = root / "s3-server.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = cls(f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2):
                    return server
            except OSError:
                if time.monotonic() > deadline:
                    stop(process)
                    raise TimeoutError(f"moto server not answering after {timeout:.0f} s") from None
                time.sleep(0.3)

    def env(self) -> dict[str, str]:
        """What a process needs to reach this store (boto3, s3fs and MLflow's S3 artifact repository)."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def client(self):
        import boto3

        env = self.env()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def close(self) -> None:
        stop(self.process)
