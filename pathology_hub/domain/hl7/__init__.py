"""HL7 v2.5.1 ORU^R01 results to the referring hospital's LIS.

* ``message``: builds (and validates, with hl7apy) the ORU^R01 of a signed report version;
* ``mllp``: the MLLP client (one message, one ACK);
* ``outbox``: the outbox rows written in the signing transaction, the worker's send job with
  its retry schedule, the admin's resend, and the per-institution LIS endpoint.
"""
