"""City rules over tracks and static blobs: parking, abandoned objects, lines, crowding."""
