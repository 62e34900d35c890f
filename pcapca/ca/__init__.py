"""Channel Access: the caproto boundary, framing, circuits and roles, channel state."""
