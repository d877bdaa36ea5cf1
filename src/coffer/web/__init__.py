"""The web app: server-rendered pages under /app on the same services the API calls.

Pages call the domain services directly (never our own HTTP API), each inside a unit of work
of its own, so a refusal rolls back exactly as it does for the API and is shown on the page.
"""
