"""CA protocol facts per caproto command class, and the dispatch tables built from them."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple, Union

from caproto import (Beacon, CreateChanRequest, CreateChanResponse, CreateChFailResponse,
                     EchoRequest, EchoResponse, ErrorResponse, EventAddRequest, EventAddResponse,
                     EventCancelResponse, NotFoundResponse, ReadNotifyRequest, ReadNotifyResponse,
                     ReadRequest, ReadResponse, SearchRequest, SearchResponse, WriteNotifyRequest,
                     WriteNotifyResponse, WriteRequest)

from ._caproto import Commands, header_field
from .command_ids import CREATE_CHAN, EVENT_ADD, READ, READ_NOTIFY, WRITE_NOTIFY

# Every class the decoder gives a record (caproto's, by role and command id)
CLASSES = tuple(dict.fromkeys(cls for table in Commands.values() for cls in table.values()))

# Requests a server must answer, by the id their answer carries ("echo": an
# EchoResponse answers the circuit's oldest EchoRequest; they carry no id)
REQUEST_ID = {ReadNotifyRequest: "ioid", ReadRequest: "ioid", WriteNotifyRequest: "ioid",
              EventAddRequest: "subscriptionid", CreateChanRequest: "cid",
              EchoRequest: "echo"}
# ... and their answers; an ErrorResponse (None) answers the request whose
# header it quotes (quoted_id, below)
ANSWER_ID = {ReadNotifyResponse: "ioid", ReadResponse: "ioid", WriteNotifyResponse: "ioid",
             EventAddResponse: "subscriptionid", EventCancelResponse: "subscriptionid",
             CreateChanResponse: "cid", CreateChFailResponse: "cid", ErrorResponse: None,
             EchoResponse: "echo"}

# What traffic a message is (the --plot timeline's series); any other: "other"
KINDS = ("search", "search reply", "read", "write", "monitor", "beacon", "other")
KIND = {SearchRequest: "search", SearchResponse: "search reply", NotFoundResponse: "search reply",
        ReadNotifyRequest: "read", ReadNotifyResponse: "read", ReadRequest: "read",
        ReadResponse: "read", WriteRequest: "write", WriteNotifyRequest: "write",
        WriteNotifyResponse: "write", EventAddResponse: "monitor", Beacon: "beacon"}

Handlers = Mapping[Union[type, Tuple[type, ...]], Callable]


def dispatch(*consumers: Handlers) -> Dict[type, Callable]:
    """{class: handler} from consumers' {class or tuple of classes: handler}
    maps; a class several handle gets one function calling each in turn."""
    found: Dict[type, list] = {}
    for handlers in consumers:
        for classes, handler in handlers.items():
            for cls in (classes if isinstance(classes, tuple) else (classes,)):
                if cls not in CLASSES:
                    raise ValueError(f"{cls!r} is not a caproto command class")
                found.setdefault(cls, []).append(handler)
    return {cls: calls[0] if len(calls) == 1 else _each(tuple(calls))
            for cls, calls in found.items()}


class _each:
    """Several handlers as one (a class, not a closure: tables stay picklable)."""
    __slots__ = ("calls",)

    def __init__(self, calls: tuple):
        self.calls = calls

    def __call__(self, *args) -> None:
        for call in self.calls:
            call(*args)

    def __reduce__(self):
        return _each, (self.calls,)


# ------------------------------------------------------------------ ids from headers
_id_fields: Dict[tuple, Optional[int]] = {}     # (class, id name) -> HEADER_FIELDS index


def id_field(cls, name: str) -> Optional[int]:
    """Index in a record's ``fields`` of the message's ``cid``/``sid``/
    ``ioid``/``subscriptionid`` when caproto's property is that header field
    as it is (all of them, in caproto 1.3), else None."""
    index = _id_fields.get((cls, name), _id_fields)
    if index is _id_fields:
        index = _id_fields[(cls, name)] = header_field(cls, name)
    return index


def message_id(record, name: str) -> int:
    """The message's ``cid``/``sid``/``ioid``/``subscriptionid``, from its
    header fields where they serve: no caproto object needed."""
    index = _id_fields.get((record.cls, name), _id_fields)
    if index is _id_fields:
        index = id_field(record.cls, name)
    if index is None:
        return getattr(record.command, name)
    return record.fields[index]


# The id by which an ErrorResponse's quoted request header names the request
# it answers: its command -> (id name, header field): create channel by cid,
# event add by subscription id, read / read notify / write notify by ioid.
_QUOTED_IDS = {CREATE_CHAN: ("cid", "parameter1"), EVENT_ADD: ("subscriptionid", "parameter2"),
               READ: ("ioid", "parameter2"), READ_NOTIFY: ("ioid", "parameter2"),
               WRITE_NOTIFY: ("ioid", "parameter2")}


def quoted_id(header) -> Optional[Tuple[str, int]]:
    """(id name, id) of the request whose header an ErrorResponse quotes
    (``original_request``), or None for a request with no answer to pair."""
    how = _QUOTED_IDS.get(header.command)
    return None if how is None else (how[0], getattr(header, how[1]))
