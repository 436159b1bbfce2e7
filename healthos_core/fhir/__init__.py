"""FHIR R4 in and out: import Bundles/NDJSON into the record, export a patient's Bundle."""
