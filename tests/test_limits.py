"""Hostile configs and option values (issue 21, points 13 to 15): every size
is bounded and every bad value is a one-line usage error, exit status 2."""
import pytest

from pcapca.cli.config import ConfigError, MAX_CONFIG_BYTES, load_config
from pcapca.filters import MAX_VALUES

from tests.conftest import fixture, run_cli


def _laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"{'abcdefghi'[i]}: &{'abcdefghi'[i]} [" +
                     ", ".join(["*" + "abcdefghi"[i - 1]] * 9) + "]")
    return "\n".join(lines) + "\nfilter:\n  pv: *i\n"


@pytest.mark.parametrize("text,error", [
    # grew until the kernel killed it
    ("filter: &x\n  pv: *x\n", "1:9: YAML anchors (&x) and aliases are not supported: "
                               "write each value out"),
    # looped forever
    ("a: &x [*x]\n", "1:4: YAML anchors (&x) and aliases are not supported: "
                     "write each value out"),
    # a billion 'lol's: 104 s to be rejected
    (_laughs(), "1:4: YAML anchors (&a) and aliases are not supported: write each value out"),
    ("filter:\n  not_pv: *HEARTBEAT\n", "2:11: YAML aliases (*HEARTBEAT) are not supported; "
                                       "quote a glob that starts with *: \"*:HEARTBEAT\""),
    ("filter:\n  pv: " + "[" * 20 + "]" * 20 + "\n", "2:21: nested deeper than 16 levels"),
])
def test_yaml_anchors_aliases_and_deep_nesting_are_refused(tmp_path, text, error):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    res = run_cli("print", fixture("basic.pcap"), "--config", path, timeout=60)
    assert (res.returncode, res.stdout) == (2, b"")
    assert res.stderr.decode() == f"pcapca: error: {path}:{error}\n"


def test_a_config_file_is_at_most_64_kib(tmp_path):
    path = tmp_path / "c.yaml"
    head = "filter:\n  pv: 'FIX:dbl'\n"
    path.write_text(head + "#" * (MAX_CONFIG_BYTES - len(head) - 1) + "\n")
    assert load_config(str(path)).filter == {"pv": ["FIX:dbl"]}
    path.write_text(head + "#" * (MAX_CONFIG_BYTES - len(head)) + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value) == (f"{path}: larger than 64 KiB, the most a config file may be "
                              f"(match many PVs with a glob or a re: pattern)")


def test_a_config_from_a_device_is_read_to_the_bound_only():
    """/dev/zero was read whole (until memory ran out)."""
    with pytest.raises(ConfigError) as err:
        load_config("/dev/zero")
    assert str(err.value).startswith("/dev/zero: larger than 64 KiB")


def test_a_key_takes_at_most_10000_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("filter:\n  pv: [" + ",".join(f"a{i}" for i in range(MAX_VALUES + 1))
                    + "]\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value) == f"{path}:2: key 'filter.pv': 10001 values: at most 10000 per key"
    path.write_text("filter:\n  port: [" + ",".join(["5064"] * MAX_VALUES) + "]\n")
    assert load_config(str(path)).filter == {"port": [5064] * MAX_VALUES}
    res = run_cli("print", fixture("basic.pcap"), *["--pv=a"] * (MAX_VALUES + 1))
    assert res.returncode == 2
    assert res.stderr.decode() == "pcapca: error: --pv: 10001 values: at most 10000 per key\n"


@pytest.mark.parametrize("cmd", ["print", "annotate", "stats"])
@pytest.mark.parametrize("option,value,error", [
    ("--max-message", "-1", "--max-message -1: must be 1 or more (bytes of a message's payload)"),
    ("--max-message", "0", "--max-message 0: must be 1 or more (bytes of a message's payload)"),
    ("--server-port", "99999999", "--server-port 99999999: expected a port 1..65535"),
    ("--server-port", "-5", "--server-port -5: expected a port 1..65535"),
    ("--server-port", "0", "--server-port 0: expected a port 1..65535"),
    ("--port", "65536", "--port: bad port 65536: expected an integer 0..65535"),
    ("--top", "-1", "--top -1: must be 0 (all) or more"),
])
def test_a_numeric_option_out_of_range_is_a_usage_error(tmp_path, cmd, option, value, error):
    """--max-message -1 / 0 and --server-port 99999999 / -5 were accepted:
    every message skipped, exit 0."""
    if option == "--top" and cmd != "stats":
        pytest.skip("--top is stats'")
    out = tmp_path / "out.pcapng"
    args = [cmd, fixture("basic.pcap")] + ([out] if cmd == "annotate" else [])
    res = run_cli(*args, f"{option}={value}")
    assert (res.returncode, res.stdout, res.stderr.decode()) == (2, b"", f"pcapca: error: {error}\n")
    assert not out.exists()


@pytest.mark.parametrize("pattern", ["re:(a+)+$", "re:(a*)*b", "re:(a|aa)+$", "re:^X:([a-z]+:)+$",
                                     "re:(?=(a+)+)", "re:((ab)*c)*"])
def test_a_regex_with_nested_repetition_is_refused(pattern):
    """--pv 're:(a+)+$' ran for hours on a 40-character name (Python's re
    backtracks); such patterns are usage errors, on the command line and in
    a config."""
    res = run_cli("print", fixture("basic.pcap"), "--pv", pattern, timeout=60)
    assert (res.returncode, res.stdout) == (2, b"")
    assert res.stderr.decode() == (
        f"pcapca: error: --pv: regular expression {pattern!r} repeats a group that itself "
        f"repeats or alternates, as (a+)+ does: Python's re can take hours on one name with "
        f"it; write it without the nesting, or as a glob\n")


@pytest.mark.parametrize("pattern", ["re:^CORPUS:(dbl|counter)$", "re:_[1-4]$", "re:(?:a|b)*x",
                                     "re:(ab){2}", "re:(a{2})+", "re:.*:dbl", "re:(?>a+)+"])
def test_a_regex_without_nested_repetition_is_kept(pattern):
    from pcapca.filters import check_pattern
    assert check_pattern("pv", pattern) == pattern


def test_a_regex_is_searched_in_names_of_at_most_256_characters():
    """A name longer than CA names are (a hostile search) never matches a
    re: pattern, so that a pattern's backtracking stays bounded; globs and
    exact names (which never backtrack) still match it."""
    from pcapca.filters import MAX_REGEX_NAME, _Matcher
    ok, long = "X" * MAX_REGEX_NAME, "X" * (MAX_REGEX_NAME + 1)
    assert [_Matcher(["re:^X+$"])(n) for n in (ok, long)] == [True, False]
    assert [_Matcher(["X*"])(n) for n in (ok, long)] == [True, True]
    assert _Matcher([long])(long)
