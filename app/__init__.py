"""prefloop's web app and data layer."""
