"""Runs the whole API locally without Docker: routes from template.yaml, handlers in-process."""
