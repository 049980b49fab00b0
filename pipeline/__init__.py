"""Offline eye-state pipeline: data, split, augment, models, train, evaluate, gradcam (torch, timm, OpenCV)."""
