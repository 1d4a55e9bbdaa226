"""Engine: training, testing, checkpoints, distributed execution."""
