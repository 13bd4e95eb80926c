"""Chain specs and the genesis builder."""
