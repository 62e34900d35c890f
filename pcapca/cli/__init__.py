"""pcapca's command line: argument parsing, exit statuses, one module per command."""
