{{ feed_history('payments') }}
