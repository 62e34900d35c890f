"""A deterministic, step-by-step Channel Access client for recording fixtures.

It is built on caproto's sans-I/O layer (``caproto.Broadcaster``,
``caproto.VirtualCircuit``, ``caproto.ClientChannel``), i.e. the very code that
caproto's own sync and threading clients use to build and parse messages, but
driven over plain blocking sockets so that every request is sent only after
the answer to the previous one has arrived.  That makes the CA message
sequence on the wire fixed and known in advance.

Every message sent or received is appended to ``Client.transcript`` as
``(direction, transport, command)`` with direction ``'C>S'`` or ``'S>C'``;
``record_fixtures.py`` compares that transcript with what it decodes from the
capture file.
"""
from __future__ import annotations

import socket
import time

import caproto as ca

PAUSE = 0.05          # seconds to wait after each step, so steps don't overlap


class ClientError(RuntimeError):
    pass


class Circuit:
    def __init__(self, address, priority, sock):
        self.address = address
        self.vc = ca.VirtualCircuit(our_role=ca.CLIENT, address=address,
                                    priority=priority)
        self.vc.our_address = sock.getsockname()
        self.sock = sock
        self.backlog = []         # received but not yet consumed commands


class Client:
    def __init__(self, *, timeout=5.0, host_name='fixture-host',
                 user_name='fixture', pause=PAUSE):
        self.timeout = timeout
        self.host_name = host_name
        self.user_name = user_name
        self.pause = pause
        self.transcript = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(('127.0.0.1', 0))
        self.bcast = ca.Broadcaster(our_role=ca.CLIENT)
        self.bcast.client_address = self.udp.getsockname()
        self.circuits = {}
        self._search_id = 0

    # ------------------------------------------------------------------ utils
    def _log(self, direction, transport, commands):
        for c in commands:
            self.transcript.append((direction, transport, c))

    def sleep(self, t=None):
        time.sleep(self.pause if t is None else t)

    def _recv_udp(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, []
        self.udp.settimeout(remaining)
        try:
            data, addr = self.udp.recvfrom(65536)
        except (socket.timeout, ConnectionRefusedError):
            return None, []
        commands = self.bcast.recv(data, addr)
        self.bcast.process_commands(commands)
        self._log('S>C', 'udp', commands)
        return addr, commands

    # -------------------------------------------------------------------- UDP
    def register_repeater(self, port=5065):
        """RepeaterRegisterRequest to 127.0.0.1:port; wait for the confirm."""
        data = self.bcast.send(self.bcast.register('127.0.0.1'))
        self._log('C>S', 'udp', [ca.RepeaterRegisterRequest('127.0.0.1')])
        self.udp.sendto(data, ('127.0.0.1', port))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            addr, commands = self._recv_udp(deadline)
            if any(isinstance(c, ca.RepeaterConfirmResponse) for c in commands):
                self.sleep()
                return
        raise ClientError('no RepeaterConfirmResponse')

    def send_search(self, names, dest, cids):
        commands = [ca.VersionRequest(0, ca.DEFAULT_PROTOCOL_VERSION)]
        commands += [ca.SearchRequest(n, cid, ca.DEFAULT_PROTOCOL_VERSION)
                     for n, cid in zip(names, cids)]
        data = self.bcast.send(*commands)
        self._log('C>S', 'udp', commands)
        self.udp.sendto(data, dest)

    def search(self, names, dests=(('127.0.0.1', 5064),), *, expect=None,
               wait=0.3):
        """Search ``names`` (one datagram per destination, sent in order).

        After each datagram, wait until every name in ``expect`` (default:
        all names) that this destination may answer has been answered, or
        ``wait`` seconds if none is expected.  Returns {name: (host, port)} of
        the first answer per name.
        """
        expect = set(names if expect is None else expect)
        cids = []
        for _ in names:
            cids.append(self._search_id)
            self._search_id += 1
        by_cid = dict(zip(cids, names))
        found = {}
        for dest, want in self._dest_expectations(dests, expect):
            self.send_search(names, dest, cids)
            got = set()
            deadline = time.monotonic() + (self.timeout if want else wait)
            while time.monotonic() < deadline and (not want or got < want):
                addr, commands = self._recv_udp(deadline)
                for c in commands:
                    if isinstance(c, ca.SearchResponse) and c.cid in by_cid:
                        name = by_cid[c.cid]
                        got.add(name)
                        found.setdefault(name, ca.extract_address(c))
            if want and not got >= want:
                raise ClientError(f'search for {sorted(want - got)} at {dest} '
                                  'was not answered')
            self.sleep()
        return found

    @staticmethod
    def _dest_expectations(dests, expect):
        out = []
        for d in dests:
            if isinstance(d, tuple) and len(d) == 3:
                host, port, names = d
                out.append(((host, port), set(names) & expect))
            else:
                out.append((d, set(expect)))
        return out

    # -------------------------------------------------------------------- TCP
    def _send(self, circ, *commands):
        buffers = circ.vc.send(*commands)
        self._log('C>S', 'tcp', commands)
        circ.sock.sendall(b''.join(bytes(b) for b in buffers))

    def _wait(self, circ, predicate, what):
        for i, c in enumerate(circ.backlog):
            if predicate(c):
                del circ.backlog[i]
                return c
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            circ.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = circ.sock.recv(1 << 20)
            except socket.timeout:
                break
            commands, _ = circ.vc.recv(data)
            if any(c is ca.DISCONNECTED for c in commands):
                raise ClientError(f'disconnected while waiting for {what}')
            found = None
            for c in commands:
                circ.vc.process_command(c)
                self._log('S>C', 'tcp', [c])
                if found is None and predicate(c):
                    found = c
                else:
                    circ.backlog.append(c)
            if found is not None:
                return found
        raise ClientError(f'timeout waiting for {what}')

    def drain(self, circ, quiet=0.3):
        """Read (and record) what the server sends until it is silent for
        ``quiet`` seconds; the commands go to the circuit's backlog."""
        while True:
            circ.sock.settimeout(quiet)
            try:
                data = circ.sock.recv(1 << 20)
            except socket.timeout:
                return
            if not data:
                return
            commands, _ = circ.vc.recv(data)
            for c in commands:
                if c is ca.DISCONNECTED:
                    raise ClientError('disconnected while draining')
                circ.vc.process_command(c)
                self._log('S>C', 'tcp', [c])
                circ.backlog.append(c)

    def connect(self, address=('127.0.0.1', 5064), priority=0, rcvbuf=None):
        """Open a circuit: VersionRequest, HostNameRequest, ClientNameRequest
        (one send), then wait for the server's VersionResponse. ``rcvbuf``:
        the socket's receive buffer size (SO_RCVBUF), set before connecting."""
        if rcvbuf is None:
            sock = socket.create_connection(address, self.timeout)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(self.timeout)
            sock.connect(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        circ = Circuit(address, priority, sock)
        self.circuits[address] = circ
        self._send(circ,
                   ca.VersionRequest(priority=priority,
                                     version=ca.DEFAULT_PROTOCOL_VERSION),
                   ca.HostNameRequest(self.host_name),
                   ca.ClientNameRequest(self.user_name))
        self._wait(circ, lambda c: isinstance(c, ca.VersionResponse),
                   'VersionResponse')
        self.sleep()
        return circ

    def create(self, circ, name, cid=None, wait=True):
        """CreateChanRequest; wait for the CreateChanResponse (``wait``)."""
        chan = ca.ClientChannel(name, circ.vc, cid=cid)
        self._send(circ, chan.create())
        if not wait:
            self.sleep()
            return chan
        self._wait(circ, lambda c: isinstance(c, ca.CreateChanResponse)
                   and c.cid == chan.cid, f'CreateChanResponse {name}')
        self.sleep()
        return chan

    def read(self, chan, data_type=None, data_count=None, ioid=None, wait=True):
        """ReadNotifyRequest; wait for its answer (``wait``, else return
        the request)."""
        circ = self.circuits[chan.circuit.address]
        req = chan.read(data_type=data_type, data_count=data_count, ioid=ioid)
        self._send(circ, req)
        if not wait:
            self.sleep()
            return req
        resp = self._wait(circ, lambda c: (
            isinstance(c, (ca.ReadNotifyResponse, ca.ErrorResponse))
            and getattr(c, 'ioid', None) == req.ioid
            or isinstance(c, ca.ErrorResponse)), f'read {chan.name}')
        self.sleep()
        return resp

    def write(self, chan, value, *, notify=True, data_type=None,
              data_count=None, ioid=None, expect_response=None):
        """WriteNotifyRequest (notify=True): wait for WriteNotifyResponse or
        ErrorResponse.  WriteRequest: wait for an ErrorResponse only if
        ``expect_response`` is True (caproto answers failed writes)."""
        circ = self.circuits[chan.circuit.address]
        req = chan.write(value, data_type=data_type, data_count=data_count,
                         notify=notify, ioid=ioid)
        self._send(circ, req)
        if expect_response is None:
            expect_response = notify
        resp = None
        if expect_response:
            resp = self._wait(circ, lambda c: isinstance(
                c, (ca.WriteNotifyResponse, ca.ErrorResponse)),
                f'write {chan.name}')
        self.sleep()
        return resp

    def subscribe(self, chan, data_type=None, data_count=None, mask=None,
                  wait=True):
        """EventAddRequest; wait for the first EventAddResponse (``wait``)."""
        circ = self.circuits[chan.circuit.address]
        req = chan.subscribe(data_type=data_type, data_count=data_count,
                             mask=mask)
        self._send(circ, req)
        if not wait:
            self.sleep()
            return req.subscriptionid
        self._wait(circ, lambda c: isinstance(c, ca.EventAddResponse)
                   and c.subscriptionid == req.subscriptionid,
                   f'first update {chan.name}')
        return req.subscriptionid

    def wait_updates(self, chan, subscriptionid, n):
        circ = self.circuits[chan.circuit.address]
        out = []
        for _ in range(n):
            out.append(self._wait(
                circ, lambda c: isinstance(c, ca.EventAddResponse)
                and c.subscriptionid == subscriptionid,
                f'update {chan.name}'))
        return out

    def unsubscribe(self, chan, subscriptionid):
        circ = self.circuits[chan.circuit.address]
        self._send(circ, chan.unsubscribe(subscriptionid))
        # On the wire the answer is an EventAddResponse header without
        # payload (caproto parses it as EventAddResponse).
        self._wait(circ, lambda c: (
            isinstance(c, ca.EventCancelResponse)
            or isinstance(c, ca.EventAddResponse)
            and c.header.payload_size == 0)
            and c.subscriptionid == subscriptionid,
                   f'EventCancelResponse {chan.name}')
        self.sleep()

    def clear(self, chan):
        circ = self.circuits[chan.circuit.address]
        self._send(circ, chan.clear())
        self._wait(circ, lambda c: isinstance(c, ca.ClearChannelResponse)
                   and c.cid == chan.cid, f'ClearChannelResponse {chan.name}')
        self.sleep()

    def close_circuit(self, circ):
        """Shut down the TCP connection (FIN) and wait for the server's FIN."""
        try:
            circ.sock.shutdown(socket.SHUT_WR)
            circ.sock.settimeout(self.timeout)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                if not circ.sock.recv(65536):
                    break
        except OSError:
            pass
        circ.sock.close()
        self.circuits.pop(circ.address, None)
        self.sleep()

    def close_circuits(self):
        for circ in list(self.circuits.values()):
            self.close_circuit(circ)

    def close(self):
        self.close_circuits()
        self.udp.close()

    def unconsumed(self):
        return [c for circ in self.circuits.values() for c in circ.backlog]
