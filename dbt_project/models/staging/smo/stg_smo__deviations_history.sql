{{ feed_history('deviations') }}
