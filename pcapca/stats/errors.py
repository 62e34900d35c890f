"""Errors: ErrorResponses, failed channel creations, reads and puts answered with a failure status."""
from __future__ import annotations

from typing import List, Optional

from caproto import CreateChFailResponse, ErrorResponse, ReadNotifyResponse, WriteNotifyResponse

from ..ca._caproto import CLIENT, command_class, eca_value_to_status, reads_status_from_header
from ..output.jsonout import ts_string
from ..times import iso
from . import bounds
from .rows import addr, c_text


def _status(cmd):
    try:
        return cmd.status
    except Exception:
        return None


def _status_name(status) -> Optional[str]:
    if status is None:
        return None
    return getattr(status, "name", None) or str(status)


class Errors:
    """Error entries (at most MAX_ERRORS kept, all counted), each counted
    for its PV and server in ``traffic``. ``capture``: the CaptureFiles."""

    def __init__(self, capture, traffic):
        self.capture = capture
        self.traffic = traffic
        self.entries: List[dict] = []
        self.total = 0

    def handlers(self) -> dict:
        """After the filter: (record, its PV's row or None, its CircuitStats or None)."""
        return {(ErrorResponse, CreateChFailResponse): self._error,
                (ReadNotifyResponse, WriteNotifyResponse): self._status_error}

    def _entry(self, record, circuit, status, text, request=None) -> None:
        self.total += 1
        if record.pv is not None:
            self.traffic.pv(record.pv).errors += 1
        if circuit is not None:
            self.traffic.server(circuit.server).errors += 1
            client, server = addr(circuit.client), addr(circuit.server)
        elif record.role == "server":
            client, server = addr((record.dst, record.dport)), addr((record.src, record.sport))
        else:
            client, server = addr((record.src, record.sport)), addr((record.dst, record.dport))
        if len(self.entries) >= bounds.MAX_ERRORS:
            return
        self.entries.append({
            "time": ts_string(record.ts), "iso": iso(record.ts),
            "file": self.capture.name(), "frame": self.capture.local(record.frame),
            "command": record.command.__class__.__name__, "pv": record.pv,
            "status": _status_name(status), "text": text, "request": request,
            "client": client, "server": server, "latency": record.latency,
        })

    def _error(self, record, pv, circuit) -> None:
        cmd = record.command
        if cmd.__class__ is CreateChFailResponse:
            self._entry(record, circuit, None, "channel creation failed (CreateChFailResponse)")
            return
        status = _status(cmd)
        try:
            text = c_text(cmd.error_message)
        except Exception:
            text = ""
        if not text and status is not None:
            text = getattr(status, "description", "") or ""
        request = None
        try:
            cls = command_class(CLIENT, cmd.original_request.command)
            request = cls.__name__ if cls is not None else f"command {cmd.original_request.command}"
        except Exception:
            pass
        self._entry(record, circuit, status, text, request)

    def _status_error(self, record, pv, circuit) -> None:
        if record._command is None and reads_status_from_header(record.cls):
            status = eca_value_to_status.get(record.fields[4])   # (what caproto's does)
        else:
            status = _status(record.command)
        if status is None or getattr(status, "success", 1):
            return
        text = getattr(status, "description", "") or ""
        request = record.command.__class__.__name__.replace("Response", "Request")
        self._entry(record, circuit, status, text, request)
