"""City-data standards: FIWARE Smart Data Models ``Alert``/``Device`` in NGSI-LD (issue #9)."""
