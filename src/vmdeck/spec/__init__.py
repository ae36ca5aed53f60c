"""What a VM should be: models, templates and their validation (core layer)."""
