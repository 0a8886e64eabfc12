"""The provider functions the program invokes, answered once for every engine and preview."""

from __future__ import annotations

from typing import Any

from sandbox.errors import UnsupportedResourceError

GET_REGION = "aws:index/getRegion:getRegion"
GET_CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"
GET_PARTITION = "aws:index/getPartition:getPartition"


def answer_invoke(token: str, args: dict[str, Any], *, region: str, account: str) -> dict[str, Any]:
    """What the AWS provider returns for `token` in `region` and `account`."""
    if token == GET_REGION:
        named = args.get("region") or region
        return {"id": named, "name": named, "region": named}
    if token == GET_CALLER_IDENTITY:
        return {"id": account, "accountId": account}
    if token == GET_PARTITION:
        return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"}
    raise UnsupportedResourceError(
        f"invoke {token!r}: the local engine answers only "
        f"{', '.join((GET_REGION, GET_CALLER_IDENTITY, GET_PARTITION))}"
    )
