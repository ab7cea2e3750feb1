{{ feed_history('subjects') }}
