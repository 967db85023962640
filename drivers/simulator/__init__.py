"""An analyser simulator (``lis simulate``): ASTM and HL7 senders with retry, host queries, replay, faults.

* :mod:`drivers.simulator.messages`: realistic messages for a profile (values around reference ranges, QC
  samples now and then), host queries, capture replay.
* :mod:`drivers.simulator.peers`: the analyser side of a connection (ASTM LIS1-A sender with retransmission,
  MLLP sender waiting for the ACK and resending on timeout), both answering the LIS's order downloads.
* :mod:`drivers.simulator.faults`: byte-level fault injection (bad checksum, duplicate frame, dropped ACK...).
* :mod:`drivers.simulator.runner`: the command: targets (``tcp://``, ``serial://``, listen mode), pacing,
  the JSON-lines report of what was sent and acknowledged.
"""
