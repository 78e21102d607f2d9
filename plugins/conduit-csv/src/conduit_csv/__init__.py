"""CSV source and destination for Conduit (placeholder until the plugin lands)."""
