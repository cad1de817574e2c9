"""Outgoing messages, whatever they say: email through SendGrid, Slack messages with images, the outbox that
stands in for either without credentials, and one retry-with-backoff for both. Nothing here knows about exports
or subscriptions; the callers compose the content."""
