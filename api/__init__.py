"""HTTP only: the REST API, backed by Temporal; never imports kubernetes."""
