"""pcapca: EPICS Channel Access in packet captures, readable, filterable, annotated.

    >>> import pcapca
    >>> for record in pcapca.read("capture.pcap"):
    ...     print(record.frame, record.pv, record.command)
"""
__version__ = "0.1.0"

from .pipeline import read  # noqa: E402,F401

__all__ = ["read", "__version__"]
