"""Dispatch out: incidents to department systems by signed webhook or e-mail (issue #9)."""
