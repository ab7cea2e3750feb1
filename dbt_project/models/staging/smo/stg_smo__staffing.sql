{{ current_snapshot('staffing', per_study=false) }}
