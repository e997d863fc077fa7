"""fedrisk: privacy-preserving federated risk scoring for medical-insurance fund supervision."""

__version__ = "0.1.0"
