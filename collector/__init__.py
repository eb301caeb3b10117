"""The headless collector: reads emp:events with a consumer group, writes files and OTLP."""
