{{ feed_history('sites') }}
