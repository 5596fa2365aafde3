"""Multi-object tracking: stable ids, short occlusions, stationary state."""
