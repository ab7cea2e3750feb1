{{ feed_history('visits') }}
