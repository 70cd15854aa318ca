"""Small helpers shared by every app, with no models and no imports of the apps."""
