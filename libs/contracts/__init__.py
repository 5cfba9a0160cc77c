"""The messages certlc services exchange over NATS, and the subjects and streams they use.

This package is the only place where a subject or a stream is spelled. It holds no I/O.
"""
