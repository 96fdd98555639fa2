"""One module per schema version; `persistence.schema` is what the newest one produces."""
