"""What events look like: one set of text helpers and one phrase table (``text``, ``phrases``), the printers of
every format, the parse view, the per-call timelines and the summary.

Pure functions of payloads to text and bytes: no I/O, no event loop.
"""
