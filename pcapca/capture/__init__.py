"""Capture readers: byte sources, gzip, pcap, pcapng, several captures as one."""
