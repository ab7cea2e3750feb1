{{ current_snapshot('sites') }}
