"""Python client for the Image Prewarm Service (filled in by issue 6)."""
