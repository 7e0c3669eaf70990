"""Model health: each calculation writes a warehouse table; the report only reads them.

| module | what it computes |
|---|---|
| `reference` | a version's training reference, stored with it when it is logged |
"""
