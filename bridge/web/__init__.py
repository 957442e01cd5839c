"""HTTP surface: health, provider webhooks, connector webhooks."""
