"""Messages whose caproto decoding cannot fail are built only when asked for
(``Record.command``); the channel state and ``{command}`` work from the
header fields and memoised payload texts. Everything pcapca computes that way
must be what caproto's own object gives, for every message of every fixture."""
import inspect
import sys

import numpy as np
import pytest

import pcapca
from pcapca.output import jsonout, reprs
from pcapca.ca._caproto import CLIENT, SERVER, header_fields
from pcapca.ca.messages import build
from pcapca.ca.channels import ChannelTracker
from pcapca.ca._caproto import Message
from pcapca.output.jsonout import command_fields, record_fields
from pcapca.output.reprs import record_repr
from pcapca.output.values import jsonable

from tests.conftest import FIXTURES, built_now

NAMES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.fixture(autouse=True)
def no_wrap():
    with np.printoptions(linewidth=sys.maxsize):
        yield


def tcp_records(name):
    return [r for r in pcapca.read(FIXTURES / name) if r.msg is not None]


@pytest.mark.parametrize("name", NAMES)
def test_repr_from_fields_is_caproto_repr(name):
    reprs._data_texts.clear()
    records = tcp_records(name)
    for record in records:
        expected = repr(built_now(record))
        assert record_repr(record) == expected, record
        assert record_repr(record) == expected, record      # again: from the memo
    # and once more for all, with the memo filled by the first pass
    fresh = tcp_records(name)
    assert [record_repr(r) for r in fresh] == [repr(built_now(r)) for r in fresh]


@pytest.mark.parametrize("name", NAMES)
def test_later_build_is_the_same_object(name):
    for record in tcp_records(name):
        now = built_now(record)
        later = record.command
        assert later.__class__ is now.__class__ is record.cls
        assert bytes(later) == bytes(now)
        assert header_fields(later.header) == record.fields


@pytest.mark.parametrize("name", NAMES)
def test_ids_from_header_fields_are_caproto_attributes(name):
    tracker = ChannelTracker()
    checked = 0
    for record in tcp_records(name):
        now = built_now(record)
        for attr in ("cid", "sid", "ioid", "subscriptionid"):
            if hasattr(now.__class__, attr):
                assert tracker._id(record, attr) == getattr(now, attr), (record, attr)
                checked += 1
    if name in ("basic.pcap", "libca.pcap", "rsrv.pcap"):
        assert checked > 20


def test_reading_and_naming_build_no_data_message():
    """What makes a filter cheap: decoding and channel state leave the
    caproto objects of reads, writes and monitors unbuilt."""
    kinds = {}
    for record in pcapca.read(FIXTURES / "libca.pcap"):
        if record.msg is not None:
            kinds.setdefault(record.cls.__name__, set()).add(record._command is None)
    for name in ("ReadNotifyRequest", "ReadNotifyResponse", "EventAddResponse",
                 "WriteNotifyRequest", "ClearChannelRequest", "CreateChanResponse"):
        assert kinds[name] == {True}, name
    # names are read from the payload by caproto: built at once
    assert kinds["CreateChanRequest"] == {False}


def test_laziness_survives_instrumented_bytecode():
    """A fuzzer (atheris) or coverage tool rewrites the bytecode of pcapca's
    modules: the header properties must still be recognised, or the fuzzer
    would only ever see messages built at once (as it did before this test)."""
    pytest.importorskip("atheris")
    import subprocess
    code = ("import atheris\n"
            "with atheris.instrument_imports(include=['pcapca']):\n"
            "    import pcapca.pipeline\n"
            "import pcapca\n"
            "print(sum(r._command is None for r in pcapca.read(%r)))\n" % str(FIXTURES / "basic.pcap"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    plain = sum(r._command is None for r in pcapca.read(FIXTURES / "basic.pcap"))
    assert plain == 28
    assert int(out.stdout.split()[-1]) == plain


def test_repr_memo_answers_without_building():
    reprs._data_texts.clear()
    records = [r for r in tcp_records("corpus_libca.pcap")
               if r.cls.__name__ == "ReadNotifyResponse"]
    assert len(records) > 50
    texts = [record_repr(r) for r in records]
    unbuilt = [r for r in records if r._command is None]
    # the first reply of each payload builds its object (to compare the text
    # with caproto's, or for types formatted through caproto), the repeats do not
    assert 0 < len(unbuilt) < len(records)
    assert texts == [repr(built_now(r)) for r in records]


@pytest.mark.parametrize("name", NAMES)
def test_json_fields_from_header_fields_are_caproto_fields(name):
    jsonout._data_values.clear()
    for _ in range(2):                         # the second time from the memo
        for record in tcp_records(name):
            now = built_now(record)
            assert record_fields(record) == command_fields(now), record
            assert record_fields(record) == caproto_fields(now), record


def caproto_fields(command):
    """An independent reference: every constructor parameter of the class,
    read through caproto's own property and made JSON-able."""
    if not isinstance(command, Message):
        return command_fields(command)          # (UnknownCommand: its header)
    out = {}
    for param in inspect.signature(type(command)).parameters:
        try:
            out[param] = jsonable(getattr(command, param))
        except Exception as ex:
            out[param] = f"(error: {ex})"
    return out
