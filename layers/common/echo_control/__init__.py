"""Echo Control's shared layer: models, data access and business rules for every function."""
