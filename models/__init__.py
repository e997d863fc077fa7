"""The claim schema, the knowledge base, and (later) features, rules and models."""
