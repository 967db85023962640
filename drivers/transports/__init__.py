"""Analyser transports: the I/O around the sans-IO protocol cores (ARCHITECTURE.md principle 1).

* :mod:`drivers.transports.stream`: the :class:`ByteStream` a session talks to.
* :mod:`drivers.transports.tcp`: TCP server (analyser connects) and client (LIS connects, backoff), TLS.
* :mod:`drivers.transports.serial_port`: RS-232 with pyserial on the event loop, reopened when it disappears.
* :mod:`drivers.transports.session_loop`: feeds bytes and ``time.monotonic()`` into a core, runs its timers.
* :mod:`drivers.transports.journal`: journal before acknowledge with group commit; ordered processing.
* :mod:`drivers.transports.instrument`: one configured instrument as a runtime component.
"""
