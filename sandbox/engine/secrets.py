"""Pulumi's wire encoding of secret values, unwrapped for the engines that consume inputs."""

from __future__ import annotations

from typing import Any

from pulumi.runtime import rpc

_SIG_KEY = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig


def unwrap_secrets(value: Any, path: str = "") -> tuple[Any, set[str]]:
    """Plain value and the dotted paths of every secret found inside it."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            inner, found = unwrap_secrets(value.get("value"), path)
            return inner, found | {path}
        plain: dict[str, Any] = {}
        in_dict: set[str] = set()
        for key, item in value.items():
            plain[key], inner_found = unwrap_secrets(item, f"{path}.{key}" if path else key)
            in_dict |= inner_found
        return plain, in_dict
    if isinstance(value, list):
        items: list[Any] = []
        in_list: set[str] = set()
        for index, item in enumerate(value):
            plain_item, inner_found = unwrap_secrets(item, f"{path}[{index}]")
            items.append(plain_item)
            in_list |= inner_found
        return items, in_list
    return value, set()
