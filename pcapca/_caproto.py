"""The one place where pcapca touches caproto's internals.

caproto 1.3 keeps the command table (and the bytestream helpers, which pcapca
replaces by its own framing in ca_decode.py) in the private module
``caproto._commands``; pyproject.toml pins a caproto version range for
that reason. Everything else in pcapca imports caproto names from here.
"""
from __future__ import annotations

import ctypes

import caproto
from caproto import CLIENT, SERVER
from caproto._commands import (  # noqa: F401  (re-exported)
    Beacon,
    Commands,
    Message,
    EventCancelResponse,
    SearchResponse,
)
from caproto._headers import ExtendedMessageHeader, MessageHeader

__all__ = [
    "caproto", "CLIENT", "SERVER", "Beacon", "Commands", "Message", "EventCancelResponse", "SearchResponse",
    "MessageHeader", "ExtendedMessageHeader", "HEADER_SIZE", "EXTENDED_HEADER_SIZE",
    "command_class",
]

HEADER_SIZE = ctypes.sizeof(MessageHeader)              # 16
EXTENDED_HEADER_SIZE = ctypes.sizeof(ExtendedMessageHeader)  # 24


def command_class(role, command_id):
    """caproto's class for ``command_id`` sent by ``role``, or None."""
    return Commands[role].get(command_id)
