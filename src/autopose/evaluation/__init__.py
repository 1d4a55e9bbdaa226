"""Evaluation: OKS, OKS-NMS, COCO keypoint AP/AR through pycocotools, MPII PCKh."""
