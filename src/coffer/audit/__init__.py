"""The tamper-evident audit log of admin actions and security events."""
