"""pcapca inside Wireshark: the Lua post-dissector (pcapca.lua) reading the
comments ``pcapca annotate`` writes, the extcap capture interface (extcap.py)
and ``pcapca wireshark install|uninstall|--print-paths`` (install.py).
See docs/wireshark.md."""
