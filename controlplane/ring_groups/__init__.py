"""ring_groups capability."""
