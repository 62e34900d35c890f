"""capture.sets.FileFrames: the frame numbering of a set of captures, and what was read of each."""
import gzip
import pickle

from tests.conftest import fixture
from pcapca.capture.progress import open_with_progress
from pcapca.capture.reader import read_capture
from pcapca.capture.sets import FileFrames, FileSummary, read_captures
from pcapca.items import Packet, Problem


def _read(files):
    return list(read_captures(files, opener=lambda p: open_with_progress(p, enabled=False)))


def _packets(name):
    return [p for p in read_capture(str(fixture(name))) if p.__class__ is Packet]


def test_summaries_say_what_was_read_of_each_file():
    basic, libca = _packets("basic.pcap"), _packets("libca.pcap")
    files = FileFrames([str(fixture("basic.pcap")), str(fixture("libca.pcap"))])
    _read(files)
    assert files.summaries == [
        FileSummary(str(fixture("basic.pcap")), len(basic), basic[0].ts, basic[-1].ts),
        FileSummary(str(fixture("libca.pcap")), len(libca), libca[0].ts, libca[-1].ts)]
    assert files.current == 1 and files.starts == [1, len(basic) + 1]
    assert files.locate(len(basic) + 2) == (str(fixture("libca.pcap")), 2)


def test_a_file_stopped_early_is_summarised_as_far_as_it_was_read():
    files = FileFrames([str(fixture("basic.pcap")), str(fixture("libca.pcap"))])
    items = read_captures(files, opener=lambda p: open_with_progress(p, enabled=False))
    packets = [item for _, item in zip(range(5), items)]
    items.close()
    assert [s.packets for s in files.summaries] == [5]
    assert files.summaries[0].last == packets[-1].ts


def test_a_single_compressed_file_labels_its_offsets(tmp_path):
    """One file read through read_captures (as stats reads) labels what its
    byte offsets count, as print's one-capture path does."""
    path = tmp_path / "basic.pcap.gz"
    data = fixture("basic.pcap").read_bytes()
    path.write_bytes(gzip.compress(data[:-7]))               # (the last packet cut)
    files = FileFrames([str(path)])
    problems = [p for p in _read(files) if p.__class__ is Problem]
    assert [p.offsets_in for p in problems] == ["decompressed capture"]
    assert problems[0].source == "" and files.summaries[0].packets > 0


def test_pickled_and_back():
    files = FileFrames([str(fixture("basic.pcap")), str(fixture("libca.pcap"))])
    _read(files)
    copy = pickle.loads(pickle.dumps(files))
    assert copy.summaries == files.summaries and copy.starts == files.starts
    frame = files.starts[1] + 3
    assert copy.locate(frame) == files.locate(frame)
    problem = Problem("x", frame=frame, offset=10)
    assert copy.label(problem, 1) == files.label(problem, 1)
