"""Modal screens: confirmation, text input and help."""
