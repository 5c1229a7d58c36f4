"""What events look like: the printers of every format, the per-call timelines and the summary.

Pure functions of payloads to text and bytes: no I/O, no event loop.
"""
