{{ current_snapshot('deviations') }}
