{{ current_snapshot('payments') }}
