"""CA protocol facts per caproto command class, and the dispatch tables built from them."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Tuple, Union

from caproto import (Beacon, CreateChanRequest, CreateChanResponse, CreateChFailResponse,
                     EchoRequest, EchoResponse, ErrorResponse, EventAddRequest, EventAddResponse,
                     EventCancelResponse, NotFoundResponse, ReadNotifyRequest, ReadNotifyResponse,
                     ReadRequest, ReadResponse, SearchRequest, SearchResponse, WriteNotifyRequest,
                     WriteNotifyResponse, WriteRequest)

from ._caproto import Commands

# Command ids by name (caproto's own: each class's ID)
EVENT_ADD = EventAddRequest.ID              # 1
READ = ReadRequest.ID                       # 3
SEARCH = SearchRequest.ID                   # 6
READ_NOTIFY = ReadNotifyRequest.ID          # 15
CREATE_CHAN = CreateChanRequest.ID          # 18
WRITE_NOTIFY = WriteNotifyRequest.ID        # 19

# Every class the decoder gives a record (caproto's, by role and command id)
CLASSES = tuple(dict.fromkeys(cls for table in Commands.values() for cls in table.values()))

# Requests a server must answer, by the id their answer carries ("echo": an
# EchoResponse answers the circuit's oldest EchoRequest; they carry no id)
REQUEST_ID = {ReadNotifyRequest: "ioid", ReadRequest: "ioid", WriteNotifyRequest: "ioid",
              EventAddRequest: "subscriptionid", CreateChanRequest: "cid",
              EchoRequest: "echo"}
# ... and their answers; an ErrorResponse (None) answers the request whose
# header it quotes (channels.quoted_id)
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
