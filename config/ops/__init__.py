"""Operations: request ids, structured logs, metrics, health checks and data retention."""
