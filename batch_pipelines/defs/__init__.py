"""Component instances of the code location: the demo pipeline and the shared resources."""
