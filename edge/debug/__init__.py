"""The debug view: the pipeline's view drawn on the frame (replay --annotate, debug_snapshot)."""
