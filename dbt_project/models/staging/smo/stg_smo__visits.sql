{{ current_snapshot('visits') }}
