"""The Idempotency-Key store and the route class that replays stored responses."""
