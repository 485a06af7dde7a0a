"""Serving many tasks on one backbone: the multi-task model and its measured memory."""
