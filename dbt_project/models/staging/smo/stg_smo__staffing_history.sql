{{ feed_history('staffing') }}
