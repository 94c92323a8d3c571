"""Standard-library-only helpers every process of ours shares, importing nothing else of ours:
`files` (private files written atomically) and `certs` (a private CA and its certificates)."""
