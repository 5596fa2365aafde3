"""Privacy before anything leaves the device: face blur and bounded snapshot crops."""
