"""What users get: text lines, caproto's repr, JSON, annotated pcapng."""
