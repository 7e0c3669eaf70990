"""Model health: each calculation writes a warehouse table; a report only reads them.

| module | what it does |
|---|---|
| `reference` | a version's training reference, stored with it when it is trained |
| `metrics` | the formulas (PSI, Jensen–Shannon distance, CBPE, Hanley–McNeil, DeLong, ...), pure numpy |
| `drift` | feature and prediction drift of a date against the reference and earlier dates |
| `performance` | estimated (CBPE) and realized performance |
| `alerts` | which checks fired, the retrain policy, the webhook |
| `monitor` | the health of a date, and realized performance of labelled dates, written to `monitoring.*` |
"""
