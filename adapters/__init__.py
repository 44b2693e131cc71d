"""Channel adapters: one module per channel, each an `Adapter` (`lapakd/adapters/base.py`).

A channel is registered with one line in `lapakd/channels.py` (`register(Channel(...))`); the
config section `[channels.<name>]` is validated against the adapter's `CONFIG`.
"""
