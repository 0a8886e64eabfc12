"""moto behaviour the harness corrects so tests measure our code, not moto's races.

moto 5.2.5 numbers a shard's records as "highest so far + 1" with no lock
(`moto.kinesis.models.Shard.put_record`), so two concurrent PutRecords calls landing on one shard
can get the same sequence number and one record silently replaces the other; and
`Shard.get_records` iterates the same dict a writer may be growing. Kinesis never does either.
While installed, every shard's writes and reads are serialized by one lock.

And moto invokes a function synchronously inside every PutRecord(s) to a stream that has a Kinesis
event source mapping (`moto.awslambda.models.LambdaBackend.send_kinesis_message`, one record per
event, in Docker); with no Docker each put waits on a failing Docker call and nothing is
delivered. While installed, that hook does nothing: `sandbox.lambda_mapping` delivers instead,
as Lambda's poller does.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.kinesis.models import Shard

from sandbox.patching import PatchSet

_LOCK = threading.RLock()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def _no_push_invoke(self: LambdaBackend, *args: Any, **kwargs: Any) -> None:
    """moto's invoke-on-put for Kinesis mappings, off (the mapping simulator polls instead)."""


_PATCHES = PatchSet(
    [
        *(
            (Shard, name, _serialized(Shard.__dict__[name]))
            for name in ("put_record", "get_records")
        ),
        (LambdaBackend, "send_kinesis_message", _no_push_invoke),
    ]
)
is_installed = _PATCHES.is_installed
install = _PATCHES.install
uninstall = _PATCHES.uninstall
moto_fixes_installed = _PATCHES.installed
