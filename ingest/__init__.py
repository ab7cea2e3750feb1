"""Getting data in: SMO deliveries through the delivery gate into the warehouse, and the
ClinicalTrials.gov client (`ingest.registry`).

- `profiles`: an SMO's declared export format; `readers`: files -> raw text frames;
  `gate`: raw frame -> typed frame + every contract failure; `rejection_report`: the
  JSON/Markdown report beside a quarantined file; `inbox`: file handling (archive, quarantine,
  duplicates, supersession); `warehouse`: raw tables, the delivery ledger, current snapshots.

May import `core` and `expectations`; never Dagster, `orchestration`, `publishing` or
`synthetic`.
"""
