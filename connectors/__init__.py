"""Built-in connectors. Each is registered in the ``bridge.connectors`` entry-point group."""
