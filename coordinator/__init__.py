"""What runs at the bureau: the Flower ServerApp and its workflows (later issues)."""
