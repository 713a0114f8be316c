"""Echo Control's shared layer: models, data access and business rules for every function."""

# First, before anything imports the packages it defers (cold starts).
from echo_control import deferred_imports  # noqa: F401
