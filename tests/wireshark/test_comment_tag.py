"""The tag at the end of annotate's comments (pcapca.output.comments)."""
from pcapca.output.comments import _fit, tag_pv
from pcapca.capture.pcapng_write import cut_comment


def test_pv_escape_leaves_no_space_bracket_or_percent():
    assert tag_pv("FIX:dbl") == "FIX:dbl"
    assert tag_pv("a b]%[c\n\u00e9") == "a%20b%5D%25%5Bc%0A%C3%A9"
    assert tag_pv("raw\udcff") == "raw%FF"       # (a surrogate escape is its byte)
    assert tag_pv("lone\ud800") == "lone?"       # (any other surrogate: ?)


def test_a_long_comment_is_cut_before_its_tag():
    tag = " [pcapca/1 role=server cmd=ReadNotifyResponse pv=X]"
    text = "X ReadNotifyResponse(data=" + "\u00e9" * 40000 + ")"
    whole = _fit(text, tag)
    enc = whole.encode("utf-8")
    assert len(enc) == 65535 - 1 or len(enc) == 65535    # (a 2-byte character not split)
    assert whole.endswith(tag)
    body = whole[:-len(tag)]
    cut = int(body.rsplit("[cut by pcapca: ", 1)[1].split(" ")[0])
    assert len(body.encode("utf-8")) - len(f"…[cut by pcapca: {cut} bytes]".encode()) + cut \
        == len(text.encode("utf-8"))
    assert cut_comment(whole) == enc                      # (the writer leaves it whole)
    assert _fit("short", tag) == "short" + tag
