"""Prometheus metrics for operators: the web's `/metrics`, its PostgreSQL and Redis gauges, the
HTTP metrics middleware and the readiness check on queues (docs/observability.md)."""
