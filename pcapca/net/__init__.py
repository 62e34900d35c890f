"""Link, IPv4 and transport headers; IPv4 and TCP reassembly."""
