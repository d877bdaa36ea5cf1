"""What every request passes before it reaches a route: body caps, headers, documentation."""
