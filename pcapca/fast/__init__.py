"""The filtered print's shortcut past the stages (``print --pv``)."""
