"""SQL migrations of the consumer, applied in file-name order at every start-up (each is idempotent)."""
