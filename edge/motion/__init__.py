"""Motion gating (where did the frame change) and the static-foreground stage (left objects)."""
