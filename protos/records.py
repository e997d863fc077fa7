"""Typed access to the one ConfigRecord that fedrisk's Flower messages carry.

Both the ServerApp (coordinator/) and the ClientApp (node/) put their fields into the record
named :data:`RECORD` and read them back with these getters, which refuse a missing field or a
field of the wrong type with the field's name, instead of failing somewhere later.
"""

from __future__ import annotations

from collections.abc import Mapping

from flwr.app import ConfigRecord, Message, RecordDict

RECORD = "fedrisk"
Value = int | float | str | bytes | bool | list[int] | list[str] | list[bytes]


class RecordError(ValueError):
    """A message whose record lacks a field, or holds one of the wrong type."""


def record(msg: Message) -> ConfigRecord:
    """The message's fedrisk record (raises :class:`RecordError` if it has none)."""
    records = msg.content.config_records
    if RECORD not in records:
        raise RecordError(f"the message has no {RECORD!r} record")
    return records[RECORD]


def content(fields: Mapping[str, Value]) -> RecordDict:
    """A message content holding ``fields`` as the fedrisk record."""
    return RecordDict({RECORD: ConfigRecord(dict(fields))})


def get_int(config: ConfigRecord, key: str) -> int:
    value = _get(config, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"field {key!r} must be an integer")
    return value


def get_str(config: ConfigRecord, key: str) -> str:
    value = _get(config, key)
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} must be text")
    return value


def get_bytes(config: ConfigRecord, key: str) -> bytes:
    value = _get(config, key)
    if not isinstance(value, bytes):
        raise RecordError(f"field {key!r} must be bytes")
    return value


def get_optional_bytes(config: ConfigRecord, key: str) -> bytes | None:
    return get_bytes(config, key) if key in config else None


def get_bytes_list(config: ConfigRecord, key: str) -> list[bytes]:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise RecordError(f"field {key!r} must be a list of bytes")
    return [bytes(v) for v in value]  # type: ignore[arg-type]


def get_int_list(config: ConfigRecord, key: str) -> list[int]:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise RecordError(f"field {key!r} must be a list of integers")
    return [int(v) for v in value]


def get_str_list(config: ConfigRecord, key: str) -> list[str]:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"field {key!r} must be a list of text")
    return [str(v) for v in value]


def _get(config: ConfigRecord, key: str) -> object:
    if key not in config:
        raise RecordError(f"the record lacks field {key!r}")
    return config[key]
