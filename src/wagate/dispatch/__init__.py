"""Delivery: the dispatcher that drains the outbox to the Cloud API, and its pacing."""
