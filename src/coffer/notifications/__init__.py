"""Telling people and systems what happened: events, email, websockets, webhooks."""
