"""The event path, written once for every command: read, filter, record, replay, and decode in worker processes.

No module here touches a socket, an event loop or the terminal: sources hand it bytes and dicts, and it hands
the views payloads to render and the process edge bytes to write.
"""
