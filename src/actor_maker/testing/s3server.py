"""A real S3 endpoint on loopback, served by moto in a background thread.

moto is a development dependency, so it is imported only when a server starts::

    with start_moto_server() as s3:
        s3.make_bucket("assets")
        store = S3Store("assets", endpoint_url=s3.endpoint_url, ...)
"""

from __future__ import annotations

from typing import Any

import boto3

from actor_maker.testing.loopback import LoopbackServer

#: The access key id and secret this server's clients use; moto accepts anything.
DUMMY_KEY = "testing"


class MotoS3(LoopbackServer):
    """A moto S3 server on ``127.0.0.1`` at a free port, serving once constructed."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        session = boto3.session.Session(
            aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name="us-east-1"
        )
        #: A boto3 S3 client for this server (region us-east-1), safe to share across threads.
        self.client: Any = session.client("s3", endpoint_url=self.endpoint_url)

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` (at least 3 characters) and return its name."""
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self._server.stop()


def start_moto_server() -> MotoS3:
    """Start a moto S3 server; stop it with ``.stop()`` or use it as a context manager."""
    return MotoS3()
