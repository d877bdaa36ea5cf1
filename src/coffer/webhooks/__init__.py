"""Outbound webhooks: endpoints users register, signed (Standard Webhooks) deliveries of the
event catalogue, retried for up to three days, to targets vetted against SSRF."""
