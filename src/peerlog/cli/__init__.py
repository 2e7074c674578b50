"""The `peerlog` command line; `rich` output lives here only."""
