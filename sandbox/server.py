"""The harness's moto world served over HTTP, for work that spans processes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from sandbox import iam_gaps, moto_fixes, world
from sandbox.world import MotoWorld

# How often the serving loop looks for a stop request. moto's ThreadedMotoServer leaves werkzeug's
# 0.5 s, which every served-world fixture paid when it stopped (12 s of one suite run).
_SHUTDOWN_POLL_SECONDS = 0.02


class _MotoHttpServer:
    """moto's WSGI application on werkzeug's threaded server, as moto's ThreadedMotoServer
    serves it, in a daemon thread that notices a stop within ``_SHUTDOWN_POLL_SECONDS``."""

    def __init__(self, host: str, port: int) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            host, port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name=f"moto-server-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


@dataclass
class ServedWorld:
    """A moto server in this process, the world it serves, and how to stop it."""

    world: MotoWorld
    url: str
    _restore: ExitStack = field(repr=False)

    def stop(self) -> None:
        """Stop serving, then restore moto's enforcement settings and patches (idempotent)."""
        self._restore.close()  # an ExitStack runs its callbacks once

    def __enter__(self) -> ServedWorld:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(port: int = 0, host: str = "127.0.0.1", region: str = "us-east-1") -> ServedWorld:
    """Serve a fresh two-account world with IAM enforced; port 0 picks a free port."""
    restore = ExitStack()
    try:
        # moto's settings and backends are process-global; this process is the server's, so the
        # patches and enforcement apply to everything it serves until stop().
        restore.enter_context(iam_gaps.iam_gaps_installed())
        restore.enter_context(moto_fixes.moto_fixes_installed())
        # Start from empty backends and leave them empty: the world is the server's alone.
        moto_api_backend.reset()
        restore.callback(moto_api_backend.reset)
        server = _MotoHttpServer(host, port)
        restore.callback(server.stop)
        url = server.url
        served_world = world.bootstrap(region, endpoint_url=url)
        restore.enter_context(world.served_here(url))
        restore.enter_context(world.enforcement())
    except BaseException:
        restore.close()
        raise
    # The ServedWorld owns the cleanup from here on.
    return ServedWorld(served_world, url, restore.pop_all())


def serve_forever(port: int = 0, host: str = "127.0.0.1", world_file: Path | None = None) -> None:
    """Serve a world until interrupted; print its URL and where its credentials are.

    The credentials are moto's fakes, valid only against this server while it runs. With
    ``world_file`` they are written there (mode 0600) and stdout carries only the URL and the
    path, which keeps them out of CI logs; without it the world JSON is the second stdout line,
    which is the simplest way for a parent process to learn it.
    """
    # A shell starts a background job (`cohort-sync local serve &` in a script) with SIGINT
    # ignored, and Python then installs no KeyboardInterrupt for it: the server would outlive
    # every Ctrl-C and `kill -INT`. It stops on SIGINT and SIGTERM whatever it inherited.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.default_int_handler)
    served = start_server(port, host)
    try:
        print(served.url, flush=True)
        document = json.dumps(served.world.to_json())
        if world_file is None:
            print(document, flush=True)
        else:
            fd = os.open(world_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(document)
            print(f"world: {world_file}", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        served.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line: python -m sandbox.server [--port N] [--host H] [--world-file PATH]."""
    parser = argparse.ArgumentParser(description=serve_forever.__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--world-file", type=Path, help="write the world JSON here, not stdout")
    args = parser.parse_args(argv)
    serve_forever(args.port, args.host, args.world_file)


if __name__ == "__main__":
    main()
