"""Search: the network-level controller, the bi-level loop, derivation, random search."""
