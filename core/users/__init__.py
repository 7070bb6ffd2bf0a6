"""Users: registration, authentication, profile."""
