"""--config FILE.yaml: loading, validation (one-line errors with the line
number), and the command line overriding the file. Counts are exact, on
real captures (see tests/test_filters.py for where the figures come from)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from pcapca.cli.main import build_parser
from pcapca.cli.config import Config, ConfigError, apply_config, load_config
from pcapca.filters import Filter, FilterError
from pcapca.pipeline import read
from tests.conftest import ROOT

FIXTURES = os.path.join(ROOT, "fixtures")
LIBCA = os.path.join(FIXTURES, "corpus_libca.pcap")
BASIC = os.path.join(FIXTURES, "basic.pcap")
EXAMPLE = os.path.join(FIXTURES, "filter-example.yaml")
LIBCA_YAML = os.path.join(FIXTURES, "filter-libca.yaml")


def run(*args):
    return subprocess.run([sys.executable, "-m", "pcapca", *args], cwd=ROOT,
                          capture_output=True, text=True)


def out_lines(*args):
    p = run("print", "-q", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------------ loading
def test_example_config():
    cfg = load_config(EXAMPLE)
    assert cfg.filter == {"pv": ["FIX:*"], "not_pv": ["*:HEARTBEAT"],
                          "command": ["ReadNotify*", "EventAddResponse"], "port": [5064]}
    assert cfg.print_format == "{frame} {pv} {name} {request_frame}"
    assert cfg.print_json is False
    assert cfg.annotate_comment == "{pv} {command}"
    assert cfg.annotate_keep_all is False
    f = Filter.build(**cfg.filter)
    assert sum(map(f.matches, read(BASIC))) == 14    # 5 ReadNotify pairs + 4 updates


def test_libca_config():
    cfg = load_config(LIBCA_YAML)
    # unquoted YAML date-time and float: the text as written is kept (exact ns)
    assert cfg.filter["since"] == "2026-11-29T18:44:26.103977Z"
    assert cfg.filter["until"] == "1795977873.783998"
    assert cfg.filter["not_pv"] == ["*.*"]           # scalar -> one-element list
    assert cfg.filter["not_command"] == []
    f = Filter.build(**cfg.filter)
    assert f.since_ns == 1795977866103977000 and f.until_ns == 1795977873783998000
    assert sum(map(f.matches, read(LIBCA))) == 44
    assert cfg.annotate_keep_all is True


def test_example_config_cli_output():
    # format "{frame} {pv} {name} {request_frame}"
    rows = [line.split(" ") for line in out_lines("--config", EXAMPLE, BASIC)]
    assert [r[1:3] for r in rows] == (
        [["FIX:dbl", "ReadNotifyRequest"], ["FIX:dbl", "ReadNotifyResponse"]] * 3
        + [["FIX:counter", "ReadNotifyRequest"], ["FIX:counter", "ReadNotifyResponse"]]
        + [["FIX:dbl", "ReadNotifyRequest"], ["FIX:dbl", "ReadNotifyResponse"]]
        + [["FIX:counter", "EventAddResponse"]] * 4)
    # each read response names its request's frame
    assert [r[3] == rows[i - 1][0] for i, r in enumerate(rows[:10])] == [False, True] * 5
    assert len(out_lines("--config", LIBCA_YAML, LIBCA)) == 44


def test_empty_and_null(tmp_path):
    assert load_config(write(tmp_path, "")) == Config(path=str(tmp_path / "c.yaml"))
    cfg = load_config(write(tmp_path, """\
        filter:
          pv:
          until: ~
        print:
        annotate: {}
        """))
    assert cfg.filter == {} and cfg.print_format is None
    assert Filter.build(**cfg.filter).is_empty


def test_scalars_and_lists(tmp_path):
    cfg = load_config(write(tmp_path, """\
        filter:
          pv: "SOFT:*"
          command: [ReadNotifyResponse]
          host: 127.0.0.1
          port: "5066"
          since: 1795977865.84
        """))
    assert cfg.filter == {"pv": ["SOFT:*"], "command": ["ReadNotifyResponse"],
                          "host": ["127.0.0.1"], "port": [5066], "since": "1795977865.84"}
    f = Filter.build(**cfg.filter)
    # SOFT:* ReadNotifyResponses at or after the since boundary
    assert sum(map(f.matches, read(LIBCA))) == 7


# ------------------------------------------------------------------ CLI over the file
def test_cli_overrides_file():
    fmt = ["--format", "{pv} {name}"]
    # the file's pv list is replaced, its command list still applies
    assert out_lines("--config", EXAMPLE, "--pv", "FIX:counter", *fmt, BASIC) == [
        "FIX:counter ReadNotifyRequest", "FIX:counter ReadNotifyResponse"] + [
        "FIX:counter EventAddResponse"] * 4
    assert len(out_lines("--config", EXAMPLE, "--command", "Clear*", *fmt, BASIC)) == 4
    assert len(out_lines("--config", LIBCA_YAML, "--port", "5064", LIBCA)) == 22
    assert len(out_lines("--config", LIBCA_YAML, "--since", "0", LIBCA)) == 252
    assert len(out_lines("--config", LIBCA_YAML, "--pv", "*", "--not-pv", "NOPE:*",
                         "--since", "0", "--until", "2100-01-01", LIBCA)) == 536


def test_cli_format_over_file_format_and_json(tmp_path):
    assert out_lines("--config", EXAMPLE, "--format", "{name}", BASIC)[:2] == [
        "ReadNotifyRequest", "ReadNotifyResponse"]
    js = out_lines("--config", EXAMPLE, "--json", BASIC)
    assert len(js) == 14 and json.loads(js[0])["command"] == "ReadNotifyRequest"
    cfg = write(tmp_path, """\
        filter: {pv: FIX:dbl, command: WriteNotifyRequest}
        print: {json: true}
        """)
    (obj,) = map(json.loads, out_lines("--config", cfg, BASIC))
    assert obj["command"] == "WriteNotifyRequest" and obj["fields"]["data"] == [4.5]
    assert out_lines("--config", cfg, "--format", "{pv} {name}", BASIC) == [
        "FIX:dbl WriteNotifyRequest"]
    (line,) = out_lines("--config", cfg, "--no-json", BASIC)    # the default format
    assert "127.0.0.1:5064 WriteNotifyRequest(" in line and "ioid=4" in line


def test_apply_config_annotate():
    parser = build_parser()
    args = parser.parse_args(["annotate", BASIC, "out.pcapng", "--config", LIBCA_YAML])
    apply_config(args)
    assert isinstance(args.filter, Filter) and args.filter.ports == (5064, 5066)
    assert args.comment == "{pv} {name}" and args.keep_all is True
    args = parser.parse_args(["annotate", BASIC, "out.pcapng", "--config", LIBCA_YAML,
                              "--no-keep-all", "--comment", "{name}"])
    apply_config(args)
    assert args.comment == "{name}" and args.keep_all is False
    args = parser.parse_args(["annotate", BASIC, "out.pcapng"])
    apply_config(args)
    assert args.filter is None and args.comment is None and args.keep_all is False
    args = parser.parse_args(["print", BASIC])
    apply_config(args)
    assert args.filter is None and args.format is None and args.json is False


# ------------------------------------------------------------------ errors
BAD = [
    ("unknown top-level key", "filter: {}\nprnt: {}\n", 2, "prnt", "did you mean print"),
    ("unknown filter key", "filter:\n  pv: A\n  pvs: B\n", 3, "filter.pvs", "unknown key"),
    ("unknown print key", "print:\n  fmt: x\n", 2, "print.fmt", "unknown key"),
    ("wrong type mapping", "filter:\n  pv: {a: 1}\n", 2, "filter.pv", "a mapping"),
    ("wrong type item", "filter:\n  pv:\n    - A\n    - [B]\n", 4, "filter.pv", "a list"),
    ("wrong type number", "filter:\n  pv: [A, 12]\n", 2, "filter.pv", "12"),
    ("wrong type port", "filter:\n\n  port: [5064, http]\n", 3, "filter.port", "'http'"),
    ("wrong type bool", "annotate:\n  keep_all: maybe\n", 2, "annotate.keep_all",
     "true or false"),
    ("wrong type section", "filter: [pv]\n", 1, "filter", "expected a mapping"),
    ("bad regex", "filter:\n  pv:\n    - SOFT:*\n    - 're:^(CORPUS'\n", 4, "filter.pv",
     "bad regular expression"),
    ("bad command", "filter:\n  command: ReadNotifyResponce\n", 2, "filter.command",
     "did you mean ReadNotifyResponse"),
    ("bad date", "filter:\n  since: 2026-11-31T00:00:00Z\n", 2, "filter.since", "bad time"),
    ("bad until", "filter:\n  until: [1]\n", 2, "filter.until", "a list"),
    ("until before since", "filter:\n  since: 20\n  until: 10\n", 3, "filter.until",
     "not after"),
    ("bad CIDR", "filter:\n  host: [127.0.0.1, 10.0.0.0/33]\n", 2, "filter.host",
     "'10.0.0.0/33'"),
    ("bad format", "print:\n  format: '{pv} {nmae}'\n", 2, "print.format", "unknown token"),
    ("bad comment", "annotate:\n  comment: '{command.nope}'\n", 2, "annotate.comment",
     "nope"),
    ("json and format", "print:\n  format: '{pv}'\n  json: true\n", 3, "print.json",
     "cannot both"),
    ("duplicate key", "filter:\n  pv: A\n  pv: B\n", 3, "filter.pv", "given twice"),
]


@pytest.mark.parametrize("what, text, line, key, detail", BAD, ids=[b[0] for b in BAD])
def test_config_errors(tmp_path, what, text, line, key, detail):
    path = str(tmp_path / "bad.yaml")
    with open(path, "w") as f:
        f.write(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: key '{key}': "), msg
    assert detail in msg and "\n" not in msg

    for cmd in (["print", BASIC], ["annotate", BASIC, str(tmp_path / "out.pcapng")]):
        p = run(*cmd, "--config", path)
        assert p.returncode == 2
        assert p.stderr == f"pcapca: error: {msg}\n"
        assert p.stdout == ""
    assert not (tmp_path / "out.pcapng").exists()


def test_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "filter:\n  pv: [A, B\n  port: 5064\n")
    p = run("print", BASIC, "--config", path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.splitlines()) == 1
    assert p.stderr.startswith(f"pcapca: error: {path}:3: not valid YAML")


def test_top_level_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml:1: expected a mapping"):
        load_config(write(tmp_path, "- filter\n"))


def test_missing_file(tmp_path):
    p = run("print", BASIC, "--config", str(tmp_path / "nope.yaml"))
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert "nope.yaml: cannot read the config file" in p.stderr


def test_no_unsafe_yaml(tmp_path):
    path = write(tmp_path, "filter:\n  pv: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert ":2:" in str(info.value) and "\n" not in str(info.value)


def test_cli_error_over_valid_file():
    with pytest.raises(FilterError, match="^--pv: bad regular expression"):
        apply_config(build_parser().parse_args(["print", BASIC, "--config", EXAMPLE,
                                                "--pv", "re:("]))


# ------------------------------------------------------------------ docs
def test_docs_examples_are_real():
    """Every `$ pcapca ...` example in docs/filters.md prints what it shows."""
    import re
    import shlex
    with open(os.path.join(ROOT, "docs", "filters.md")) as f:
        text = f.read()
    checked = 0
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            cmd, _, shown = chunk.partition("\n")
            if not cmd.startswith("pcapca ") or "filter.yaml" in cmd:
                continue
            p = run(*shlex.split(cmd)[1:])
            assert (p.stdout + p.stderr).strip("\n") == shown.strip("\n"), cmd
            checked += 1
    assert checked >= 12
