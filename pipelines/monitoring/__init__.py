"""Model health: each calculation returns a typed result (`drift.DriftRow`,
`performance.Estimate`, `performance.RealizedPerformance`, `challenger.ShadowComparison`,
`alerts.Alert`, ...), `monitor` stores each as rows of its warehouse table (`.row()`), and
a report only reads the tables. Statuses and severities are `pipelines.domain.status` enums.

| module | what it does |
|---|---|
| `reference` | a version's training reference, stored with it when it is trained |
| `metrics` | the formulas (PSI, Jensen–Shannon distance, CBPE, Hanley–McNeil, DeLong, ...), pure numpy |
| `drift` | feature and prediction drift of a date against the reference and earlier dates |
| `performance` | estimated (CBPE) and realized performance |
| `challenger` | a shadow version's scores against the champion's, and DeLong's test once labels land |
| `alerts` | which checks fired, the retrain policy, the webhook |
| `monitor` | the health of a date, and realized performance of labelled dates, written to `monitoring.*` |
"""
