"""EMR/HIS side of the LIS (issue 7): the persistent outbox and its worker, HL7 v2.5.1 ORU^R01 over MLLP, FHIR R4
transaction Bundles, orders in (OML^O21, ORM^O01, ADT, FHIR ServiceRequest), signed PDF reports (Circular
13/2025/TT-BYT) and the XML4 insurance export (Decision 130/4750). Wiring: :func:`interfaces.wiring.install`.
See ``interfaces/README.md``.
"""
