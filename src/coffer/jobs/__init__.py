"""Background jobs: the transactional outbox, the job registry and the embedded runner."""
