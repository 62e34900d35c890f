"""The filtered print's shortcut behind one interface: the readers call the
skimmer they are given (capture.bulk.Skim) and import nothing of fast/; the
decoder counts and bounds what the skimmer accounts for."""
import ast
from pathlib import Path

import pcapca.capture
from pcapca.ca import circuits
from pcapca.ca.circuits import Decoder


def test_the_readers_do_not_import_the_shortcut():
    for path in sorted(Path(pcapca.capture.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("fast"), path.name
                assert "fast" not in (node.module or "").split("."), path.name


def test_the_decoder_counts_and_bounds_what_is_skipped(monkeypatch):
    monkeypatch.setattr(circuits, "EVICT_EVERY", 10)
    decoder = Decoder()
    assert decoder.skim_room() == 9           # (the 10th packet: the decoder looks for idle circuits)
    decoder.skimmed(7, 12)
    assert (decoder.counts.packets, decoder.counts.messages) == (7, 12)
    assert decoder.skim_room() == 2
    decoder.skimmed(3, 0)
    assert decoder.skim_room() == 9
    assert decoder.ca_direction(("127.0.0.1", 40000, "127.0.0.1", 5064)) is None
