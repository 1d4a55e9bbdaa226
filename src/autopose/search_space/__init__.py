"""The AutoPose search space (paper section 3.1): candidate ops, individual and aggregation
cells, the multi-scale module driven by a scale vector, the supernet, and genotypes."""
