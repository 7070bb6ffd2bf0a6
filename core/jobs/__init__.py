"""Background jobs: recording, claiming and running them."""
