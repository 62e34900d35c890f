"""Which CA messages to keep (``--pv``, ``--command``, ``--host``, ``--port``, ``--since``/``--until``)."""
from ..errors import FilterError
from .filter import FILTER_KEYS, Filter
from .patterns import MAX_VALUES, check_pattern, check_patterns, command_names
from .values import parse_host, parse_port, parse_time, parse_when

__all__ = ["Filter", "FilterError", "FILTER_KEYS", "MAX_VALUES", "parse_time", "parse_when", "parse_host",
           "parse_port", "check_pattern", "check_patterns", "command_names"]
