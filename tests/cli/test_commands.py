"""The command table (a command is one module and one line in
``cli.main.COMMANDS``) and the exit status of each way a command ends."""
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from pcapca.cli import common, main
from pcapca.cli.outfile import Interrupted
from pcapca.errors import (CaptureFormatError, ConfigError, FilterError, FormatError, OutputError,
                           UsageError)
from tests.conftest import FIXTURES, ROOT


def command(monkeypatch, name, run, declare=common.add_common):
    """A command module (add_parser and run) in the table, as the table
    names one: by its module name."""
    module = SimpleNamespace(add_parser=lambda sub: declare(sub.add_parser(name, help="test")),
                             run=run)
    monkeypatch.setitem(sys.modules, f"pcapca_test_{name}", module)
    monkeypatch.setitem(main.COMMANDS, name, f"pcapca_test_{name}")


def test_the_table_is_the_commands():
    assert list(main.COMMANDS) == ["print", "annotate", "stats", "wireshark"]
    sub = next(a for a in main.build_parser()._actions if a.dest == "cmd")
    assert list(sub.choices) == ["print", "annotate", "stats", "wireshark"]


def test_a_run_imports_only_its_command(tmp_path):
    """(start-up: the other commands' modules are not loaded)"""
    code = ("import sys; from pcapca.cli import main; main.main(['print', sys.argv[1], '-q']); "
            "print(sorted(m for m in sys.modules if m.startswith(('pcapca.stats', "
            "'pcapca.wireshark', 'pcapca.cli.cmd_', 'tqdm'))))")
    out = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "basic.pcap")],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout
    assert out.splitlines()[-1] == "['pcapca.cli.cmd_print']"


def test_a_command_is_one_module_and_one_line_in_the_table(monkeypatch, capsys):
    def declare(p):
        p.add_argument("name")
        common.add_common(p)

    def run(args):
        print(f"hello {args.name}")
        return common.OK
    command(monkeypatch, "hello", run, declare)
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
    command(monkeypatch, "fail", run)
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
    command(monkeypatch, "fail", run)
    monkeypatch.setattr(sys, "stdout", open("/dev/null", "w"))
    assert main.main(["fail"]) == status
    assert capsys.readouterr().err == ""


def test_yaml_is_loaded_only_when_a_config_file_is_read():
    code = ("import sys, pcapca.cli.config; m = sys.modules['yaml']; "
            "print(type(m).__name__, 'yaml.reader' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout == "_LazyModule False\n"
