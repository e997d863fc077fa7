"""What runs at a site: ingest and desensitization, the store, the identity vault."""
