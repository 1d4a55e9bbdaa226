"""Drawings and plots: PNG files through matplotlib (Agg renderer), and poses drawn over
images and video frames with OpenCV (``poses.py``)."""
