"""Data: keypoint metadata, datasets, top-down transforms, heatmap codec, synthetic set."""
