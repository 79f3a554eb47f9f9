"""Exchange connectors. Venue specifics stay in here and never pass the normalized records."""
