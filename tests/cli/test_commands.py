"""The command table (a command is one module and one line in
``cli.main.COMMANDS``) and the exit status of each way a command ends."""
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from pcapca.cli import common, main
from pcapca.cli.outfile import Interrupted
from pcapca.errors import (CaptureFormatError, ConfigError, FilterError, FormatError,
                           OutputError, UsageError)


def command(name, run, declare=common.add_common):
    """A command module: add_parser and run."""
    return SimpleNamespace(add_parser=lambda sub: declare(sub.add_parser(name, help="test")),
                           run=run)


def test_the_table_is_the_commands():
    assert list(main.COMMANDS) == ["print", "annotate", "stats", "wireshark"]
    sub = next(a for a in main.build_parser()._actions if a.dest == "cmd")
    assert list(sub.choices) == ["print", "annotate", "stats", "wireshark"]


def test_a_command_is_one_module_and_one_line_in_the_table(monkeypatch, capsys):
    def declare(p):
        p.add_argument("name")
        common.add_common(p)

    def run(args):
        print(f"hello {args.name}")
        return common.OK
    monkeypatch.setitem(main.COMMANDS, "hello", command("hello", run, declare))
    assert main.main(["hello", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"


@pytest.mark.parametrize("error, status, line", [
    (UsageError("bad use"), 2, "pcapca: error: bad use"),
    (CaptureFormatError("not a capture"), 2, "pcapca: error: not a capture"),
    (FormatError("bad format"), 2, "pcapca: error: bad format"),
    (ConfigError("f.yaml:3: bad key"), 2, "pcapca: error: f.yaml:3: bad key"),
    (FilterError("pv", "--pv: empty pattern ''"), 2, "pcapca: error: --pv: empty pattern ''"),
    (FileNotFoundError(2, "No such file or directory", "x.pcap"), 2,
     "pcapca: error: cannot open 'x.pcap': No such file or directory"),
    (OutputError("cannot write 'o': No space left on device"), 4,
     "pcapca: error: cannot write 'o': No space left on device"),
    (RuntimeError("oops"), 3, "pcapca: internal error: RuntimeError: oops (run with --debug "
                              "for the traceback, and please report it)"),
])
def test_each_error_ends_in_one_line_and_its_exit_status(monkeypatch, capsys, error, status,
                                                          line):
    def run(args):
        raise error
    monkeypatch.setitem(main.COMMANDS, "fail", command("fail", run))
    assert main.main(["fail"]) == status
    assert capsys.readouterr() == ("", line + "\n")
    with pytest.raises(type(error)):
        main.main(["fail", "--debug"])


@pytest.mark.parametrize("error, status", [
    (Interrupted(signal.SIGTERM), 128 + 15), (Interrupted(signal.SIGHUP), 128 + 1),
    (KeyboardInterrupt(), 130), (BrokenPipeError(32, "Broken pipe"), 0),
])
def test_signals_and_a_reader_gone_away(monkeypatch, capsys, error, status):
    def run(args):
        raise error
    monkeypatch.setitem(main.COMMANDS, "fail", command("fail", run))
    monkeypatch.setattr(sys, "stdout", open("/dev/null", "w"))
    assert main.main(["fail"]) == status
    assert capsys.readouterr().err == ""


def test_yaml_is_loaded_only_when_a_config_file_is_read():
    code = ("import sys, pcapca.cli.main; m = sys.modules['yaml']; "
            "print(type(m).__name__, 'yaml.reader' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "_LazyModule False\n"
