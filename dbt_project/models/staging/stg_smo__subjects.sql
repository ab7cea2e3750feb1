{{ current_snapshot('subjects') }}
