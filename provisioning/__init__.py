"""Field provisioning of camera units and sensors, and balena fleet management."""
